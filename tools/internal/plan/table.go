package plan

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
)

// WriteTable prints one line per build, in build order: service, image
// repository, tags, and the built services it waits for.
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
	return tw.Flush()
}
