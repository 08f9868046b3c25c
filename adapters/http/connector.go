package http

import (
	"encoding/json"
	nethttp "net/http"
	"sort"
	"strings"
	"sync"

	"github.com/cockroachdb/errors"
)

// Connector is Go code for what an API needs beyond the declarative
// config: requests signed or otherwise prepared in code, records wrapped
// in an envelope of the API's own, fields nested or named in ways no key
// of the config describes. The adapter keeps everything else: polling from
// the high-water mark, reconciliation, echo suppression, the ID map, the
// request budget, retries and the circuit. A config names its connector
// (connector: <name>); the program that runs the sidecar registers it
// first (RegisterConnector), then starts the agent (sidecar.Start).
//
// Every method is called from several goroutines at once. Embed
// NoConnector to implement only some of them.
type Connector interface {
	// Prepare changes a request just before it is sent, after the
	// config's authentication set its header: it may add headers or sign
	// the request. It must not read the body (Request.GetBody gives a
	// copy). An error fails the request as a connection error would: it
	// is retried, and the system counts as unavailable after the retries.
	Prepare(req *nethttp.Request) error
	// Records returns the records of a list response of collection coll,
	// each as the API sends it, in the response's order.
	Records(coll string, body []byte) ([]json.RawMessage, error)
	// Record turns a record as the API sends it (in a list, or in the
	// response of a read or a write) into a JSON object holding the
	// config's ID, updated-at and declared fields by their config names.
	Record(coll string, raw json.RawMessage) (json.RawMessage, error)
	// Body turns the JSON object the adapter would send to create or
	// update a record of coll (the config's fields by their config names)
	// into the body the API takes.
	Body(coll string, obj json.RawMessage) ([]byte, error)
}

// NoConnector is a Connector that changes nothing: it sends requests as
// they are, finds the records of a list response where the collection's
// records key says, and takes records and bodies as they are. Embed it to
// implement only what an API needs.
type NoConnector struct{}

// Prepare leaves the request as it is.
func (NoConnector) Prepare(*nethttp.Request) error { return nil }

// Records returns nil: the adapter then finds the records where the
// collection's records key says.
func (NoConnector) Records(string, []byte) ([]json.RawMessage, error) { return nil, nil }

// Record returns the record as it is.
func (NoConnector) Record(_ string, raw json.RawMessage) (json.RawMessage, error) { return raw, nil }

// Body returns the object as it is.
func (NoConnector) Body(_ string, obj json.RawMessage) ([]byte, error) { return obj, nil }

var (
	connectorsMu sync.Mutex
	connectors   = map[string]Connector{}
)

// RegisterConnector makes a connector available to configs under name.
// It panics when name is empty or already taken, like database/sql's
// Register.
func RegisterConnector(name string, c Connector) {
	connectorsMu.Lock()
	defer connectorsMu.Unlock()
	if name == "" || c == nil {
		panic("http: RegisterConnector needs a name and a connector")
	}
	if _, ok := connectors[name]; ok {
		panic("http: connector " + name + " registered twice")
	}
	connectors[name] = c
}

// connectorNamed returns the registered connector name.
func connectorNamed(name string) (Connector, error) {
	connectorsMu.Lock()
	defer connectorsMu.Unlock()
	if c, ok := connectors[name]; ok {
		return c, nil
	}
	names := make([]string, 0, len(connectors))
	for n := range connectors {
		names = append(names, n)
	}
	sort.Strings(names)
	hint := "no connector is registered: a program registers its connector with http.RegisterConnector before it starts the sidecar (docs/http.md, Connectors)"
	if len(names) > 0 {
		hint = "registered connectors: " + strings.Join(names, ", ")
	}
	return nil, errors.WithHint(keyErr("connector", "no connector %q is registered", name), hint)
}

// items returns the records of a list response: the connector's, when it
// finds them, else those at the collection's records key.
func (col *Collection) items(body []byte) ([]json.RawMessage, error) {
	if col.conn != nil {
		items, err := col.conn.Records(col.name, body)
		if err != nil {
			return nil, errors.Wrapf(err, "list response: connector %s", col.connName)
		}
		if items != nil {
			return items, nil
		}
	}
	raw := json.RawMessage(body)
	for _, part := range col.recordsPath() {
		var obj map[string]json.RawMessage
		if err := json.Unmarshal(raw, &obj); err != nil {
			return nil, errors.Newf("list response: want an object holding %q: %s", col.Records, clip(body))
		}
		raw = obj[part]
	}
	var items []json.RawMessage
	if err := json.Unmarshal(raw, &items); err != nil || items == nil {
		return nil, errors.Newf("list response: want an array of records at %q: %s", col.Records, clip(body))
	}
	return items, nil
}

// fromAPI turns a record as the API sends it into the object the config
// describes (Connector.Record).
func (col *Collection) fromAPI(raw []byte) ([]byte, error) {
	if col.conn == nil {
		return raw, nil
	}
	b, err := col.conn.Record(col.name, raw)
	if err != nil {
		return nil, errors.Wrapf(err, "connector %s", col.connName)
	}
	return b, nil
}

// toAPI turns the object the adapter sends into the API's body
// (Connector.Body).
func (col *Collection) toAPI(obj []byte) ([]byte, error) {
	if col.conn == nil {
		return obj, nil
	}
	b, err := col.conn.Body(col.name, obj)
	if err != nil {
		return nil, errors.Wrapf(err, "connector %s", col.connName)
	}
	return b, nil
}
