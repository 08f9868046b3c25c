package sidecar

import (
	"net/http"
	"slices"

	"github.com/lattice-crdt/lattice/crdt"
	"github.com/lattice-crdt/lattice/sidecar/engine"
)

// CollectionInfo is one collection as GET /v1/collections shows it.
type CollectionInfo struct {
	Name string   `json:"name"`
	Key  []string `json:"key"`
	// Synced reports whether this node's system holds the collection (a
	// table it captures and applies); false for collections known only from
	// the config or from peers' writes.
	Synced bool `json:"synced"`
	// Records counts the records this node's store holds, deleted ones (kept
	// as tombstones) included.
	Records uint64 `json:"records"`
	// Fingerprint identifies the collection's merge rules; peers with
	// another fingerprint for it are listed in status as schema_mismatch.
	Fingerprint string      `json:"fingerprint"`
	Fields      []FieldInfo `json:"fields"`
}

// FieldInfo is one field of a collection: its merge rule, and the kind of
// value the system stores for it where known.
type FieldInfo struct {
	Name string `json:"name"`
	// Policy is the merge rule: lww, orset, max, min, prefer[a,b].
	Policy string `json:"policy"`
	// Configured is true when the config names the policy, false for the
	// lww default.
	Configured bool   `json:"configured"`
	Kind       string `json:"kind,omitempty"`
}

// Collections lists the collections this node knows: from the config and
// from its system's tables, sorted by name.
func (a *Agent) Collections() []CollectionInfo {
	info := a.catalog()
	names := map[string]bool{}
	for _, c := range a.schema.Collections() {
		names[c.Name] = true
	}
	mapped := map[string]bool{}
	for _, n := range info.Names() {
		names[n], mapped[n] = true, true
	}
	out := make([]CollectionInfo, 0, len(names))
	for _, name := range sortedKeys(names) {
		col, err := a.schema.Collection(name)
		if err != nil {
			continue
		}
		var ci *engine.Mapping
		if mapped[name] {
			ci, _ = info.Lookup(name)
		}
		c := CollectionInfo{Name: name, Key: slices.Clone(col.Key), Fingerprint: col.Fingerprint(), Fields: []FieldInfo{}}
		if ci != nil {
			c.Synced = ci.Synced
			if len(c.Key) == 0 {
				c.Key = slices.Clone(ci.Key)
			}
		}
		// The IDs of a collection are name + 0x00 + key: they sit in
		// [name\x00, name\x01).
		c.Records = a.store.Fingerprint(crdt.ID(name+"\x00"), crdt.ID(name+"\x01")).Count
		fields := map[string]bool{}
		for f := range col.Fields {
			fields[f] = true
		}
		if ci != nil {
			for f := range ci.Kinds {
				if !slices.Contains(c.Key, f) {
					fields[f] = true
				}
			}
		}
		for _, f := range sortedKeys(fields) {
			_, configured := col.Fields[f]
			fi := FieldInfo{Name: f, Policy: col.Policy(f).String(), Configured: configured}
			if ci != nil {
				if k, ok := ci.Kinds[f]; ok {
					fi.Kind = k.String()
					if e := ci.Elems[f]; k == crdt.KindList && e != crdt.KindNull {
						fi.Kind = "list of " + e.String()
					}
				}
			}
			c.Fields = append(c.Fields, fi)
		}
		out = append(out, c)
	}
	return out
}

func (a *Agent) collections(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"collections": a.Collections(), "schema_fingerprint": a.schema.Fingerprint()})
}
