package http

import (
	"bytes"
	"context"
	"encoding/json"
	nethttp "net/http"

	"github.com/cockroachdb/errors"
)

// SoftDelete describes an API that marks a record deleted instead of
// removing it: a record whose Field holds Value (or, without Value, any
// value but null and false: a deletion time) is deleted. Capture reports
// it as a delete, and a snapshot leaves it out. Apply deletes a record by
// setting the field (Apply: soft, the default: a Method request, PATCH by
// default, to the update path with the field and, with stamp_updated,
// the updated-at) or with the collection's delete request (Apply: hard).
// Every other write sends the field as not deleted: false when Value is
// true, else null, so that a record deleted elsewhere and written again
// comes back.
//
// A soft delete is a change like any other: the API must move the
// record's updated-at with it, or the polls do not see it.
type SoftDelete struct {
	Field  string `yaml:"field"`
	Value  any    `yaml:"value"`
	Apply  string `yaml:"apply"`
	Method string `yaml:"method"`

	value []byte // Value as JSON; nil for "any value but null and false"
}

// checkSoftDelete fills and validates the collection's deleted key.
func (col *Collection) checkSoftDelete(key string) error {
	d := col.Deleted
	if d == nil {
		return nil
	}
	key += ".deleted"
	if d.Field == "" {
		return errors.WithHint(keyErr(key+".field", "missing"), "the field that marks a record deleted, e.g. deleted: {field: deleted, value: true}")
	}
	if d.Field == col.ID || d.Field == col.Updated {
		return errors.WithHint(keyErr(key+".field", "%q is the ID or the updated field", d.Field), "name the field that marks a record deleted")
	}
	if _, ok := col.Columns[d.Field]; ok {
		return errors.WithHint(keyErr(key+".field", "%q is a declared column", d.Field),
			"the deleted field is not synced as a column; drop it from columns")
	}
	switch d.Apply {
	case "":
		d.Apply = "soft"
	case "soft", "hard":
	default:
		return errors.WithHint(keyErr(key+".apply", "%q", d.Apply), "soft (set the field) or hard (send the delete request)")
	}
	if d.Method == "" {
		d.Method = nethttp.MethodPatch
	}
	switch d.Value.(type) {
	case nil:
	case bool, int, int64, float64, string:
		b, err := json.Marshal(d.Value)
		if err != nil {
			return errors.Wrapf(err, "config %s.value", key)
		}
		d.value = b
	default:
		return errors.WithHint(keyErr(key+".value", "%v is not a scalar", d.Value), "e.g. value: true, or no value for a deletion time")
	}
	return nil
}

// isDeleted reports whether a decoded record's object says it is deleted.
func (col *Collection) isDeleted(obj map[string]json.RawMessage) bool {
	d := col.Deleted
	if d == nil {
		return false
	}
	raw, ok := obj[d.Field]
	if !ok {
		return false
	}
	raw = bytes.TrimSpace(raw)
	if d.value == nil {
		return !bytes.Equal(raw, []byte("null")) && !bytes.Equal(raw, []byte("false"))
	}
	var got, want any
	if json.Unmarshal(raw, &got) != nil || json.Unmarshal(d.value, &want) != nil {
		return false
	}
	return got == want
}

// liveValue is what a write sends in the deleted field of a live record.
func (d *SoftDelete) liveValue() json.RawMessage {
	if string(d.value) == "true" {
		return json.RawMessage("false")
	}
	return json.RawMessage("null")
}

// deletedValue is what a soft delete sends in the deleted field: Value,
// or the time now in the collection's updated format.
func (col *Collection) deletedValue(now int64) json.RawMessage {
	if v := col.Deleted.value; v != nil {
		return v
	}
	if col.UpdatedFormat == "unix_ms" {
		return json.RawMessage(col.formatUpdated(now))
	}
	b, _ := json.Marshal(col.formatUpdated(now))
	return b
}

// softDelete marks record id deleted. A record the server no longer holds
// counts as deleted. The write's echo is recorded like an update's, and
// the record stays known: the server still holds it.
func (a *Adapter) softDelete(ctx context.Context, col *Collection, id string, pos int64) error {
	stamp := a.clk.Now().UnixMilli()
	obj := map[string]json.RawMessage{col.Deleted.Field: col.deletedValue(stamp)}
	if col.stampUpdated {
		obj[col.Updated] = col.updatedJSON(stamp)
	}
	body, err := json.Marshal(obj)
	if err != nil {
		return errors.Wrap(err, "http adapter: soft delete")
	}
	r, err := a.c.do(ctx, col.Deleted.Method, a.recordURL(col, col.Update.Path, id), body)
	var se *statusError
	if errors.As(err, &se) && se.code == nethttp.StatusNotFound {
		return a.st.deleted(ctx, col.name, id, pos)
	}
	if err != nil {
		return err
	}
	// No last row: a record brought back is diffed whole.
	return a.st.wrote(ctx, col.name, id, pos, a.updatedOf(col, r.body, stamp), nil)
}

// updatedJSON renders an updated-at as the API writes it.
func (col *Collection) updatedJSON(ms int64) json.RawMessage {
	if col.UpdatedFormat == "unix_ms" {
		return json.RawMessage(col.formatUpdated(ms))
	}
	b, _ := json.Marshal(col.formatUpdated(ms))
	return b
}
