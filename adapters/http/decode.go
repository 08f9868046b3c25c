package http

import (
	"bytes"
	"encoding/json"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/cockroachdb/errors"
	"github.com/lattice-crdt/lattice/crdt"
)

// record is one decoded record of a collection.
type record struct {
	id      string // the ID as text: decimal for int IDs
	updated int64  // milliseconds since the epoch; 0 when the record has none
	row     crdt.Row
	deleted bool // the API marks the record deleted (SoftDelete)
}

// key returns the record's key.
func (col *Collection) key(id string) (crdt.Key, error) {
	if col.idKind == crdt.KindInt {
		i, err := strconv.ParseInt(id, 10, 64)
		if err != nil {
			return "", errors.Newf("id %q is not an integer", id)
		}
		return crdt.IntKey(i), nil
	}
	return crdt.StringKey(id), nil
}

// idText returns the ID a key names, as text.
func (col *Collection) idText(k crdt.Key) (string, error) {
	vs, err := k.Values()
	if err != nil || len(vs) != 1 || vs[0].Kind() != col.idKind {
		return "", errors.Newf("key %s is not one %s", k, col.idKind)
	}
	if col.idKind == crdt.KindInt {
		return strconv.FormatInt(vs[0].AsInt(), 10), nil
	}
	return vs[0].AsString(), nil
}

// decodeList returns the records of a list response, decoded one by one:
// a record that cannot be decoded is returned in bad with its error (by
// position), so that one bad record does not hide the others.
func (col *Collection) decodeList(body []byte) (recs []record, bad []error, err error) {
	items, err := col.items(body)
	if err != nil {
		return nil, nil, err
	}
	for i, it := range items {
		r, err := col.decodeResponse(it)
		if err != nil {
			bad = append(bad, errors.Wrapf(err, "record %d", i))
			continue
		}
		recs = append(recs, r)
	}
	return recs, bad, nil
}

// recordsPath returns the keys of the records key's dotted path.
func (col *Collection) recordsPath() []string {
	if col.Records == "" {
		return nil
	}
	return strings.Split(col.Records, ".")
}

// decodeResponse decodes a record as the API sends it, through the
// connector (Connector.Record).
func (col *Collection) decodeResponse(raw []byte) (record, error) {
	b, err := col.fromAPI(raw)
	if err != nil {
		return record{}, err
	}
	return col.decodeRecord(b)
}

// body renders a write's row as the API's body (encode, then
// Connector.Body); only, when not nil, limits the declared fields sent.
func (col *Collection) body(row crdt.Row, id string, stamp int64, only map[string]bool) ([]byte, error) {
	b, err := col.encodeFields(row, id, stamp, only)
	if err != nil {
		return nil, err
	}
	return col.toAPI(b)
}

// decodeRecord decodes one record: its ID, its updated-at and the
// declared columns (a field it lacks is null).
func (col *Collection) decodeRecord(raw []byte) (record, error) {
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(raw, &obj); err != nil || obj == nil {
		return record{}, errors.Newf("want a JSON object: %s", clip(raw))
	}
	var r record
	idRaw, ok := obj[col.ID]
	if !ok {
		return record{}, errors.Newf("no %q field: %s", col.ID, clip(raw))
	}
	idv, err := crdt.FromJSON(idRaw, col.idKind, crdt.KindNull)
	if err != nil || idv.IsNull() {
		return record{}, errors.Newf("field %s: want a %s ID: %s", col.ID, col.idKind, clip(idRaw))
	}
	if col.idKind == crdt.KindInt {
		r.id = strconv.FormatInt(idv.AsInt(), 10)
	} else {
		r.id = idv.AsString()
	}
	if u, ok := obj[col.Updated]; ok {
		if r.updated, err = col.parseUpdated(u); err != nil {
			return record{}, errors.Wrapf(err, "record %s field %s", r.id, col.Updated)
		}
	}
	r.deleted = col.isDeleted(obj)
	r.row = crdt.Row{col.ID: idv}
	for _, c := range col.columns[1:] {
		f, ok := obj[c.name]
		if !ok {
			r.row[c.name] = crdt.Null()
			continue
		}
		v, err := crdt.FromJSON(f, c.kind, crdt.KindNull)
		if err != nil && c.kind == crdt.KindTime {
			v, err = col.parseTime(f, err)
		}
		if err != nil {
			return record{}, errors.Wrapf(err, "record %s field %s", r.id, c.name)
		}
		r.row[c.name] = v
	}
	return r, nil
}

// parseTime reads a time field that is not RFC 3339 text (err): an empty
// string is null (PocketBase's empty date), and other text may be in the
// layout of the updated-at field (PocketBase's dates, "2006-01-02
// 15:04:05.000Z"), read in UTC.
func (col *Collection) parseTime(raw json.RawMessage, err error) (crdt.Value, error) {
	var s string
	if json.Unmarshal(raw, &s) != nil {
		return crdt.Value{}, err
	}
	if s == "" {
		return crdt.Null(), nil
	}
	if col.layout == "" {
		return crdt.Value{}, err
	}
	t, perr := time.Parse(col.layout, s)
	if perr != nil {
		return crdt.Value{}, err
	}
	return crdt.Time(t), nil
}

// parseUpdated reads an updated-at value in milliseconds since the epoch.
func (col *Collection) parseUpdated(raw json.RawMessage) (int64, error) {
	raw = bytes.TrimSpace(raw)
	if string(raw) == "null" {
		return 0, nil
	}
	if col.UpdatedFormat == "unix_ms" {
		var f float64
		if err := json.Unmarshal(raw, &f); err != nil || f < 0 || f > math.MaxInt64/2 {
			return 0, errors.Newf("want milliseconds since the epoch: %s", clip(raw))
		}
		return int64(f), nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return 0, errors.Newf("want a time as %s: %s", col.UpdatedFormat, clip(raw))
	}
	layout := col.layout
	if col.UpdatedFormat == "rfc3339" {
		layout = time.RFC3339Nano // reads any fraction, and none
	}
	t, err := time.Parse(layout, s)
	if err != nil {
		return 0, errors.Newf("want a time as %s: %s", col.UpdatedFormat, clip(raw))
	}
	return t.UnixMilli(), nil
}

// formatUpdated renders milliseconds as the API writes updated-at.
func (col *Collection) formatUpdated(ms int64) string {
	if col.UpdatedFormat == "unix_ms" {
		return strconv.FormatInt(ms, 10)
	}
	return time.UnixMilli(ms).UTC().Format(col.layout)
}

// encode renders a write's row as the API's record: every declared column
// (those the row lacks as null; a value of another kind than declared, or
// a field not declared, is an error, but for an int in a float column), the ID when id is not empty, and
// updated-at when the adapter stamps it.
func (col *Collection) encode(row crdt.Row, id string, stamp int64) ([]byte, error) {
	return col.encodeFields(row, id, stamp, nil)
}

// value returns the row's value of the field as the API takes it: null
// when the row lacks it, and an int in a float field as a float.
func (c colSpec) value(row crdt.Row) crdt.Value {
	v, ok := row[c.name]
	if !ok {
		return crdt.Null()
	}
	if v.Kind() == crdt.KindInt && c.kind == crdt.KindFloat {
		return crdt.Float(float64(v.AsInt()))
	}
	return v
}

// encodeFields is encode with the declared fields limited to only (nil:
// all).
func (col *Collection) encodeFields(row crdt.Row, id string, stamp int64, only map[string]bool) ([]byte, error) {
	for name := range row {
		if name != col.ID && !slices.ContainsFunc(col.columns, func(c colSpec) bool { return c.name == name }) {
			return nil, errors.Newf("field %s is not declared in collections.%s.columns", name, col.name)
		}
	}
	obj := make(map[string]json.RawMessage, len(col.columns)+1)
	for _, c := range col.columns[1:] {
		if only != nil && !only[c.name] {
			continue
		}
		v := c.value(row)
		if !v.IsNull() && v.Kind() != c.kind {
			return nil, errors.Newf("field %s is declared %s, and the row holds %s %s", c.name, c.kind, v.Kind(), v)
		}
		b, err := v.MarshalJSON()
		if err != nil {
			return nil, errors.Wrapf(err, "field %s", c.name)
		}
		obj[c.name] = b
	}
	if col.Deleted != nil {
		obj[col.Deleted.Field] = col.Deleted.liveValue()
	}
	if id != "" {
		if col.idKind == crdt.KindInt {
			obj[col.ID] = json.RawMessage(id)
		} else {
			b, _ := json.Marshal(id)
			obj[col.ID] = b
		}
	}
	if col.stampUpdated {
		if col.UpdatedFormat == "unix_ms" {
			obj[col.Updated] = json.RawMessage(col.formatUpdated(stamp))
		} else {
			b, _ := json.Marshal(col.formatUpdated(stamp))
			obj[col.Updated] = b
		}
	}
	return json.Marshal(obj)
}

// clip shortens raw JSON for a message.
func clip(b []byte) string {
	if len(b) > 200 {
		return string(b[:200]) + "..."
	}
	return string(b)
}
