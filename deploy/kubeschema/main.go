// Command kubeschema turns the Kubernetes OpenAPI (v2) spec that the
// k8s.io/kubernetes module ships (api/openapi-spec/swagger.json) into the
// standalone, strict JSON schemas kubeconform reads, one file per kind,
// named as kubeconform's {{ .ResourceKind }}{{ .KindSuffix }}.json. So the
// manifests in deploy/kubernetes are validated against the real API of a
// pinned Kubernetes release with no network but the Go module proxy.
//
//	kubeschema -spec swagger.json -out DIR v1/Service apps/v1/StatefulSet ...
//
// Standalone: every $ref is inlined (a recursive type becomes {} at its
// second occurrence). Strict: an object schema with properties admits no
// others. IntOrString and Quantity take a string or a number, as the API
// server does.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

type spec struct {
	Definitions map[string]map[string]any `json:"definitions"`
}

type gvk struct{ Group, Version, Kind string }

func main() {
	specPath := flag.String("spec", "", "the OpenAPI v2 spec (swagger.json)")
	out := flag.String("out", "", "directory to write the schemas to")
	flag.Parse()
	if *specPath == "" || *out == "" || flag.NArg() == 0 {
		fmt.Fprintln(os.Stderr, "usage: kubeschema -spec swagger.json -out DIR [GROUP/]VERSION/KIND...")
		os.Exit(2)
	}
	if err := run(*specPath, *out, flag.Args()); err != nil {
		fmt.Fprintln(os.Stderr, "kubeschema:", err)
		os.Exit(1)
	}
}

func run(specPath, out string, kinds []string) error {
	b, err := os.ReadFile(specPath)
	if err != nil {
		return err
	}
	var s spec
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("decode %s: %w", specPath, err)
	}
	want := map[gvk]bool{}
	for _, k := range kinds {
		parts := strings.Split(k, "/")
		switch len(parts) {
		case 2:
			want[gvk{"", parts[0], parts[1]}] = true
		case 3:
			want[gvk{parts[0], parts[1], parts[2]}] = true
		default:
			return fmt.Errorf("%q is not [GROUP/]VERSION/KIND", k)
		}
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	names := make([]string, 0, len(s.Definitions))
	for name := range s.Definitions {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		def := s.Definitions[name]
		gvks, _ := def["x-kubernetes-group-version-kind"].([]any)
		for _, g := range gvks {
			m, _ := g.(map[string]any)
			k := gvk{str(m["group"]), str(m["version"]), str(m["kind"])}
			if !want[k] {
				continue
			}
			delete(want, k)
			schema := resolve(s.Definitions, def, []string{name})
			b, err := json.MarshalIndent(schema, "", "  ")
			if err != nil {
				return err
			}
			if err := os.WriteFile(filepath.Join(out, fileName(k)), b, 0o644); err != nil {
				return err
			}
		}
	}
	for k := range want {
		return fmt.Errorf("no definition in %s for %s/%s/%s", specPath, k.Group, k.Version, k.Kind)
	}
	return nil
}

// fileName is kubeconform's {{ .ResourceKind }}{{ .KindSuffix }}.json: the
// kind, the group's first label (none for the core group) and the version,
// in lower case.
func fileName(k gvk) string {
	suffix := "-" + strings.ToLower(k.Version)
	if first, _, _ := strings.Cut(k.Group, "."); first != "" {
		suffix = "-" + strings.ToLower(first) + suffix
	}
	return strings.ToLower(k.Kind) + suffix + ".json"
}

func str(v any) string { s, _ := v.(string); return s }

// resolve returns node with every $ref inlined; stack holds the
// definitions being inlined, to cut recursion.
func resolve(defs map[string]map[string]any, node any, stack []string) any {
	switch n := node.(type) {
	case map[string]any:
		if ref, ok := n["$ref"].(string); ok {
			name := strings.TrimPrefix(ref, "#/definitions/")
			switch name {
			case "io.k8s.apimachinery.pkg.util.intstr.IntOrString":
				return map[string]any{"oneOf": []any{map[string]any{"type": "string"}, map[string]any{"type": "integer"}}}
			case "io.k8s.apimachinery.pkg.api.resource.Quantity":
				return map[string]any{"oneOf": []any{map[string]any{"type": "string"}, map[string]any{"type": "number"}}}
			}
			if slices.Contains(stack, name) {
				return map[string]any{}
			}
			def, ok := defs[name]
			if !ok {
				return map[string]any{}
			}
			return resolve(defs, def, append(slices.Clone(stack), name))
		}
		out := map[string]any{}
		for k, v := range n {
			if strings.HasPrefix(k, "x-kubernetes-") {
				continue
			}
			out[k] = resolve(defs, v, stack)
		}
		if _, ok := out["properties"]; ok {
			if _, set := out["additionalProperties"]; !set {
				out["additionalProperties"] = false
			}
		}
		return out
	case []any:
		out := make([]any, len(n))
		for i, v := range n {
			out[i] = resolve(defs, v, stack)
		}
		return out
	default:
		return node
	}
}
