package sidecar

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/cockroachdb/errors"
	"github.com/lattice-crdt/lattice/crdt"
)

// Client talks to an agent's HTTP API.
type Client struct {
	// Base is the API's base URL, e.g. http://127.0.0.1:7070.
	Base  string
	Token string
	HTTP  *http.Client
}

// ErrNotFound marks API answers with status 404.
var ErrNotFound = errors.New("sidecar: not found")

// NewClient returns a client for addr, which is a URL or a host:port (then
// http is assumed). caFile, if set, is a PEM bundle to trust for HTTPS.
func NewClient(addr, token, caFile string) (*Client, error) {
	base := addr
	if !strings.Contains(base, "://") {
		base = "http://" + base
	}
	u, err := url.Parse(base)
	if err != nil || u.Host == "" {
		return nil, errors.Newf("api address %q is not a URL or host:port", addr)
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, errors.Wrapf(err, "read CA file %s", caFile)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, errors.Newf("no certificates in %s", caFile)
		}
		tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	return &Client{Base: strings.TrimSuffix(u.String(), "/"), Token: token, HTTP: &http.Client{Transport: tr, Timeout: 30 * time.Second}}, nil
}

// Do sends a request and decodes a JSON answer into out (if not nil). API
// errors come back as errors carrying the server's message and hint.
func (c *Client) Do(ctx context.Context, method, path string, body any, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return errors.Wrap(err, "encode request")
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.Base+path, rd)
	if err != nil {
		return errors.Wrap(err, "build request")
	}
	// Always JSON, also without a body: the API refuses writes that do not
	// say so (an HTML form cannot).
	req.Header.Set("Content-Type", "application/json")
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return errors.WithHint(errors.Wrapf(err, "%s %s", method, path), "is the agent running, and is --api right?")
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return errors.Wrap(err, "read response")
	}
	if resp.StatusCode >= 300 {
		var ae apiError
		msg := strings.TrimSpace(string(b))
		if json.Unmarshal(b, &ae) == nil && ae.Error != "" {
			msg = ae.Error
		}
		err := errors.Newf("%s %s: %s (%d)", method, path, msg, resp.StatusCode)
		if ae.Hint != "" {
			err = errors.WithHint(err, ae.Hint)
		}
		if resp.StatusCode == http.StatusNotFound {
			err = errors.Mark(err, ErrNotFound)
		}
		return err
	}
	if out != nil && len(b) > 0 {
		if err := json.Unmarshal(b, out); err != nil {
			return errors.Wrap(err, "decode response")
		}
	}
	return nil
}

// RecordPath returns the API path of a record; key is its text form.
func RecordPath(collection, key string) string {
	return "/v1/records/" + url.PathEscape(collection) + "/" + url.PathEscape(key)
}

// KeyText returns the text form of a key given its elements' texts: a
// composite key's elements joined by commas, a comma or backslash inside an
// element escaped with a backslash.
func KeyText(parts ...string) string { return crdt.JoinKeyText(parts...) }

// Record is a record as the API returns it.
type Record struct {
	Collection string                     `json:"collection"`
	Key        string                     `json:"key"`
	Row        map[string]json.RawMessage `json:"row"`
	Fields     map[string]struct {
		Policy  string    `json:"policy"`
		Time    time.Time `json:"time"`
		Replica string    `json:"replica"`
		Source  string    `json:"source"`
		Stamp   string    `json:"stamp"`
	} `json:"fields"`
}

// Get fetches a record.
func (c *Client) Get(ctx context.Context, collection, key string) (*Record, error) {
	var r Record
	if err := c.Do(ctx, http.MethodGet, RecordPath(collection, key), nil, &r); err != nil {
		return nil, err
	}
	return &r, nil
}

// Put replaces a record's fields.
func (c *Client) Put(ctx context.Context, collection, key string, fields map[string]any) (*Record, error) {
	var r Record
	if err := c.Do(ctx, http.MethodPut, RecordPath(collection, key), fields, &r); err != nil {
		return nil, err
	}
	return &r, nil
}

// Patch changes the named fields of a record.
func (c *Client) Patch(ctx context.Context, collection, key string, fields map[string]any) (*Record, error) {
	var r Record
	if err := c.Do(ctx, http.MethodPatch, RecordPath(collection, key), fields, &r); err != nil {
		return nil, err
	}
	return &r, nil
}

// Delete deletes a record.
func (c *Client) Delete(ctx context.Context, collection, key string) error {
	return c.Do(ctx, http.MethodDelete, RecordPath(collection, key), nil, nil)
}

// Digest returns the agent's replica digest and record count.
func (c *Client) Digest(ctx context.Context) (string, uint64, error) {
	var d struct {
		Digest  string `json:"digest"`
		Records uint64 `json:"records"`
	}
	if err := c.Do(ctx, http.MethodGet, "/v1/digest", nil, &d); err != nil {
		return "", 0, err
	}
	return d.Digest, d.Records, nil
}

// Verify runs one verification pass on the agent (POST /v1/verify) with
// repair report, apply or capture.
func (c *Client) Verify(ctx context.Context, repair string) (*VerifyReport, error) {
	var rep VerifyReport
	if err := c.Do(ctx, http.MethodPost, "/v1/verify", map[string]string{"repair": repair}, &rep); err != nil {
		return nil, err
	}
	return &rep, nil
}
