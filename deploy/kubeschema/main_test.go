package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
)

func TestFileNameIsKubeconforms(t *testing.T) {
	for k, want := range map[gvk]string{
		{"", "v1", "ConfigMap"}:                      "configmap-v1.json",
		{"apps", "v1", "StatefulSet"}:                "statefulset-apps-v1.json",
		{"networking.k8s.io", "v1", "NetworkPolicy"}: "networkpolicy-networking-v1.json",
	} {
		if got := fileName(k); got != want {
			t.Errorf("fileName(%v) = %q, want %q", k, got, want)
		}
	}
}

// References are inlined, recursion is cut, objects become strict, and
// int-or-string takes both.
func TestResolve(t *testing.T) {
	spec := `{"definitions": {
	  "a.Thing": {"type": "object", "x-kubernetes-group-version-kind": [{"group": "g.example.com", "version": "v1", "kind": "Thing"}],
	    "properties": {"port": {"$ref": "#/definitions/io.k8s.apimachinery.pkg.util.intstr.IntOrString"},
	                   "child": {"$ref": "#/definitions/a.Node"},
	                   "labels": {"type": "object", "additionalProperties": {"type": "string"}}}},
	  "a.Node": {"type": "object", "properties": {"next": {"$ref": "#/definitions/a.Node"}, "name": {"type": "string"}}},
	  "io.k8s.apimachinery.pkg.util.intstr.IntOrString": {"type": "string", "format": "int-or-string"}}}`
	dir := t.TempDir()
	p := filepath.Join(dir, "swagger.json")
	if err := os.WriteFile(p, []byte(spec), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := run(p, dir, []string{"g.example.com/v1/Thing"}); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, "thing-g-v1.json"))
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	want := `{"additionalProperties":false,"properties":{"child":{"additionalProperties":false,"properties":{"name":{"type":"string"},"next":{}},"type":"object"},"labels":{"additionalProperties":{"type":"string"},"type":"object"},"port":{"oneOf":[{"type":"string"},{"type":"integer"}]}},"type":"object"}`
	if g, _ := json.Marshal(got); string(g) != want {
		t.Errorf("schema\n%s\nwant\n%s", g, want)
	}
	if err := run(p, dir, []string{"v1/Missing"}); err == nil {
		t.Error("a kind the spec lacks was not an error")
	}
}
