package declarative

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"

	"go.yaml.in/yaml/v3"
)

// lineKey holds, in every mapping decoded from the file, the line it
// starts on; it is taken out before an entity is validated. A NUL byte
// keeps it apart from any key a file can sensibly hold.
const lineKey = "\x00line"

// decoder turns a parsed YAML tree into JSON-like values (maps, slices,
// strings, json.Number, bools, nil), refusing what Kong's parser would
// not hold and bounding what aliases may expand to.
type decoder struct {
	values   int // values built outside aliases
	viaAlias int // values built while expanding aliases
	depth    int
}

// maxAliasValues is how many values aliases may add beyond the
// document's own before the file is taken for an alias bomb (a "billion
// laughs" document: a few lines that expand to billions of values).
const maxAliasValues = 100_000

// maxDepth bounds nesting, as the Admin API's JSON bodies are bounded.
const maxDepth = 1000

// decodeYAML parses data (YAML, or JSON, which YAML reads) into a value.
func decodeYAML(data []byte) (any, error) {
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, fmt.Errorf("invalid YAML or JSON: %w", err)
	}
	if root.Kind == 0 {
		return nil, fmt.Errorf("the file is empty")
	}
	d := &decoder{}
	return d.value(&root, false)
}

func (d *decoder) value(n *yaml.Node, inAlias bool) (any, error) {
	if inAlias {
		d.viaAlias++
		if d.viaAlias > maxAliasValues+d.values {
			return nil, fmt.Errorf("line %d: aliases expand to more than %d values: refused as a YAML alias bomb", n.Line, maxAliasValues)
		}
	} else {
		d.values++
	}
	d.depth++
	defer func() { d.depth-- }()
	if d.depth > maxDepth {
		return nil, fmt.Errorf("line %d: nests deeper than %d levels", n.Line, maxDepth)
	}
	switch n.Kind {
	case yaml.DocumentNode:
		if len(n.Content) != 1 {
			return nil, fmt.Errorf("line %d: expected one document", n.Line)
		}
		return d.value(n.Content[0], inAlias)
	case yaml.AliasNode:
		return d.value(n.Alias, true)
	case yaml.SequenceNode:
		out := make([]any, 0, len(n.Content))
		for _, c := range n.Content {
			v, err := d.value(c, inAlias)
			if err != nil {
				return nil, err
			}
			out = append(out, v)
		}
		return out, nil
	case yaml.MappingNode:
		return d.mapping(n, inAlias)
	case yaml.ScalarNode:
		return scalar(n)
	}
	return nil, fmt.Errorf("line %d: unexpected YAML node", n.Line)
}

func (d *decoder) mapping(n *yaml.Node, inAlias bool) (map[string]any, error) {
	out := make(map[string]any, len(n.Content)/2+1)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			return nil, fmt.Errorf("line %d: a key must be a string", k.Line)
		}
		if k.Tag == "!!merge" {
			return nil, fmt.Errorf("line %d: YAML merge keys (<<) are not supported", k.Line)
		}
		if _, dup := out[k.Value]; dup {
			return nil, fmt.Errorf("line %d: duplicate key %q", k.Line, k.Value)
		}
		val, err := d.value(v, inAlias)
		if err != nil {
			return nil, err
		}
		out[k.Value] = val
	}
	out[lineKey] = n.Line
	return out, nil
}

// scalar is a scalar as the Admin API's JSON decoder gives it: numbers as
// json.Number, so both paths validate the same values.
func scalar(n *yaml.Node) (any, error) {
	switch n.ShortTag() {
	case "!!null":
		return nil, nil
	case "!!bool":
		var b bool
		if err := n.Decode(&b); err != nil {
			return nil, fmt.Errorf("line %d: %w", n.Line, err)
		}
		return b, nil
	case "!!int":
		var i int64
		if err := n.Decode(&i); err != nil {
			return nil, fmt.Errorf("line %d: integer %s out of range", n.Line, n.Value)
		}
		return json.Number(strconv.FormatInt(i, 10)), nil
	case "!!float":
		var f float64
		if err := n.Decode(&f); err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
			return nil, fmt.Errorf("line %d: %s is not a finite number", n.Line, n.Value)
		}
		return json.Number(strconv.FormatFloat(f, 'g', -1, 64)), nil
	}
	return n.Value, nil
}

// lineOf is the line a decoded mapping started on, 0 if unknown.
func lineOf(m map[string]any) int {
	l, _ := m[lineKey].(int)
	return l
}
