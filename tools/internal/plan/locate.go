package plan

import (
	"fmt"
	"os"
	"regexp"
	"strings"

	"go.yaml.in/yaml/v4"
)

// modelPath finds a dotted path into the compose model in an error message,
// such as "services.api.ports" in "services.api.ports must be a array".
var modelPath = regexp.MustCompile(`\b((?:services|networks|volumes|secrets|configs|models|include)(?:\.[A-Za-z0-9_.\-\[\]]+)?)`)

// withLocation appends where the model path an error names is written
// ("compose.prod.yaml line 12"), when compose-go did not say so itself:
// schema and interpolation errors are found on the merged model, which has
// lost its line numbers.
func withLocation(msg string, files []string) string {
	if strings.Contains(msg, "line ") {
		return msg
	}
	m := modelPath.FindStringSubmatch(msg)
	if m == nil {
		return msg
	}
	path := strings.Split(strings.TrimRight(m[1], "."), ".")
	// The last file that defines the deepest part of the path wins, as in a merge.
	best, bestDepth, bestLine := "", 0, 0
	for i := len(files) - 1; i >= 0; i-- {
		depth, line := findPath(files[i], path)
		if depth > bestDepth {
			best, bestDepth, bestLine = files[i], depth, line
		}
	}
	if best == "" || bestDepth < 2 {
		return msg
	}
	return fmt.Sprintf("%s (%s line %d)", msg, best, bestLine)
}

// findPath returns how many segments of path the file defines, and the line
// of the deepest one.
func findPath(file string, path []string) (int, int) {
	data, err := os.ReadFile(file)
	if err != nil || len(data) > 16<<20 {
		return 0, 0
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil || len(doc.Content) == 0 {
		return 0, 0
	}
	n := doc.Content[0]
	depth, line := 0, 0
	for _, seg := range path {
		for n != nil && n.Kind == yaml.AliasNode {
			n = n.Alias
		}
		if n == nil || n.Kind != yaml.MappingNode {
			break
		}
		var next *yaml.Node
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == seg {
				line = n.Content[i].Line
				next = n.Content[i+1]
				break
			}
		}
		if next == nil {
			break
		}
		depth++
		n = next
	}
	return depth, line
}
