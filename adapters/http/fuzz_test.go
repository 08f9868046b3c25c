package http

import (
	"testing"

	"github.com/lattice-crdt/lattice/crdt"
)

// FuzzDecodeList feeds list responses to the decoder: malformed or hostile
// JSON fails or skips records, never panics, and every record it returns
// has a valid key and the declared columns.
func FuzzDecodeList(f *testing.F) {
	for _, s := range []string{
		`[{"id":"a","updatedAt":1,"name":"x","age":3}]`,
		`{"data":{"items":[{"id":"a","updatedAt":1.5e3}]}}`,
		`[{"id":null},{"id":{}},{"id":"b","age":"x"},{"id":"c","updatedAt":-1}]`,
		`[1,"x",null,[],{"id":"\u0000"}]`,
		`{"data":[]}`, `null`, `[`, `{"id":1e309}`,
		`[{"id":"a","updatedAt":"2026-01-01T00:00:00Z"}]`,
	} {
		f.Add([]byte(s), false, false)
	}
	cfg, err := ParseConfig([]byte(`
base_url: http://x
preset: json-server
collections:
  a: {columns: {name: string, age: int, doc: json, at: time, ok: bool, f: float}}
  b: {records: data.items, id_kind: int, client_ids: false, updated_format: rfc3339, columns: {name: string}}
`))
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, body []byte, second, _ bool) {
		col := cfg.Collections["a"]
		if second {
			col = cfg.Collections["b"]
		}
		recs, _, err := col.decodeList(body)
		if err != nil {
			return
		}
		for _, r := range recs {
			k, err := col.key(r.id)
			if err != nil {
				t.Fatalf("record %q: %v", r.id, err)
			}
			if err := k.Validate(); err != nil {
				t.Fatalf("record %q: key %v", r.id, err)
			}
			if len(r.row) != len(col.columns) {
				t.Fatalf("record %q: row %v lacks declared columns", r.id, r.row)
			}
			if id, err := col.idText(k); err != nil || id != r.id {
				t.Fatalf("record %q: key round trip %q %v", r.id, id, err)
			}
			for _, c := range col.columns {
				if v := r.row[c.name]; !v.IsNull() && v.Kind() != c.kind {
					t.Fatalf("record %q: %s is %s, want %s", r.id, c.name, v.Kind(), c.kind)
				}
			}
			_ = crdt.Row(r.row)
		}
	})
}
