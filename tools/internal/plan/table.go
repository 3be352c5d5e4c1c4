package plan

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
)

// WriteTable prints one line per build, in build order: service, image
// repository, tags, and the built services it waits for; then one line per
// external image (a service without build:).
func (p *Plan) WriteTable(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SERVICE\tIMAGE\tTAGS\tAFTER")
	for _, b := range p.Builds {
		after := strings.Join(b.DependsOn, ",")
		if after == "" {
			after = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", b.Service, b.Image, strings.Join(b.Tags, ","), after)
	}
	for _, n := range p.Manifest.ExternalNames() {
		e := p.Manifest.External[n]
		ref := e.Ref()
		if e.Digest != "" {
			ref = e.Image + "@" + e.Digest
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", n, ref, "(external: pinned at push)", "-")
	}
	return tw.Flush()
}
