package schemas

import (
	"embed"
	"fmt"
	"path"
	"sort"
	"strings"
	"sync"

	"github.com/linkedin/goavro/v2"
)

//go:embed *.avsc
var files embed.FS

// Source returns the text of the embedded schema name (the .avsc file name
// without extension, as events.Event.SchemaName returns it).
func Source(name string) (string, error) {
	b, err := files.ReadFile(name + ".avsc")
	if err != nil {
		return "", fmt.Errorf("schema %q: %w", name, err)
	}
	return string(b), nil
}

// Names lists the embedded schemas, sorted.
func Names() []string {
	entries, err := files.ReadDir(".")
	if err != nil {
		return nil // cannot happen: the embedded root always exists
	}
	names := make([]string, 0, len(entries))
	for _, e := range entries {
		if n, ok := strings.CutSuffix(e.Name(), ".avsc"); ok {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	return names
}

// compiled is a schema ready for use: its text, its goavro codec and its
// parsed model.
type compiled struct {
	text    string
	compact string // whitespace-free text, compared to writer schemas
	codec   *goavro.Codec
	typ     *Type
}

func compile(text string) (*compiled, error) {
	compact, err := CompactJSON(text)
	if err != nil {
		return nil, fmt.Errorf("schema is not JSON: %w", err)
	}
	codec, err := goavro.NewCodec(text)
	if err != nil {
		return nil, err
	}
	typ, err := ParseType(text)
	if err != nil {
		return nil, err
	}
	return &compiled{text: text, compact: compact, codec: codec, typ: typ}, nil
}

// embedded compiles every embedded schema once. The result never changes
// after that, so sharing it between codecs is safe.
var embedded = sync.OnceValues(func() (map[string]*compiled, error) {
	out := map[string]*compiled{}
	for _, n := range Names() {
		src, err := Source(n)
		if err != nil {
			return nil, err
		}
		c, err := compile(src)
		if err != nil {
			return nil, fmt.Errorf("embedded schema %s: %w", path.Join("schemas", n+".avsc"), err)
		}
		out[n] = c
	}
	return out, nil
})

func embeddedSchema(name string) (*compiled, error) {
	all, err := embedded()
	if err != nil {
		return nil, err
	}
	c, ok := all[name]
	if !ok {
		return nil, fmt.Errorf("no embedded schema %q", name)
	}
	return c, nil
}
