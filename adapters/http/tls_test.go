package http

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"log"
	"math/big"
	"net"
	nethttp "net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// testPKI is a CA with the certificates it signed, written as PEM files.
type testPKI struct {
	dir    string
	ca     *x509.Certificate
	caKey  *ecdsa.PrivateKey
	caFile string
	serial int64
}

func newTestPKI(t *testing.T) *testPKI {
	t.Helper()
	p := &testPKI{dir: t.TempDir()}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	p.ca, _ = x509.ParseCertificate(der)
	p.caKey = key
	p.caFile = p.write(t, "ca.pem", "CERTIFICATE", der, 0o644)
	p.serial = 1
	return p
}

func (p *testPKI) write(t *testing.T, name, typ string, der []byte, mode os.FileMode) string {
	t.Helper()
	path := filepath.Join(p.dir, name)
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), mode); err != nil {
		t.Fatal(err)
	}
	return path
}

// issue signs a certificate for names (DNS names or IP addresses), for a
// server or a client, and returns it with the paths of its PEM files.
func (p *testPKI) issue(t *testing.T, name string, client bool, names ...string) (cert tls.Certificate, certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	p.serial++
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(p.serial), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	if client {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	}
	for _, n := range names {
		if ip := net.ParseIP(n); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, n)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.ca, &key.PublicKey, p.caKey)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile = p.write(t, name+".pem", "CERTIFICATE", der, 0o644)
	keyFile = p.write(t, name+".key", "EC PRIVATE KEY", kder, 0o600)
	cert, err = tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	return cert, certFile, keyFile
}

// tlsServer starts an https server that answers every request with an
// empty list, configured by mod.
func tlsServer(t *testing.T, cert tls.Certificate, mod func(*tls.Config)) *httptest.Server {
	t.Helper()
	s := httptest.NewUnstartedServer(nethttp.HandlerFunc(func(w nethttp.ResponseWriter, r *nethttp.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, "[]")
	}))
	s.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	if mod != nil {
		mod(s.TLS)
	}
	s.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshakes
	s.StartTLS()
	t.Cleanup(s.Close)
	return s
}

// tlsAdapter opens an adapter on base with the given tls block.
func tlsAdapter(t *testing.T, base, tlsBlock string) (*Adapter, error) {
	t.Helper()
	y := fmt.Sprintf(`
preset: json-server
base_url: %s
state: %s
retries: 1
backoff: 1ms
circuit: {failures: 100}
%s
collections:
  contacts:
    columns: {name: string}
`, base, filepath.Join(t.TempDir(), "state.db"), tlsBlock)
	cfg, err := ParseConfig([]byte(y))
	if err != nil {
		return nil, err
	}
	a, err := Open(context.Background(), cfg, nil, nil)
	if err != nil {
		return nil, err
	}
	t.Cleanup(func() { _ = a.Close() })
	return a, nil
}

func TestTLS(t *testing.T) {
	pki := newTestPKI(t)
	srvCert, _, _ := pki.issue(t, "server", false, "127.0.0.1")
	namedCert, _, _ := pki.issue(t, "named", false, "api.internal")
	_, clientCert, clientKey := pki.issue(t, "client", true, "sync")
	pool := x509.NewCertPool()
	pool.AddCert(pki.ca)

	plain := tlsServer(t, srvCert, nil)
	mutual := tlsServer(t, srvCert, func(c *tls.Config) {
		c.ClientAuth, c.ClientCAs = tls.RequireAndVerifyClientCert, pool
	})
	named := tlsServer(t, namedCert, nil)
	old := tlsServer(t, srvCert, func(c *tls.Config) { c.MinVersion, c.MaxVersion = tls.VersionTLS10, tls.VersionTLS11 })

	ca := fmt.Sprintf("tls: {ca_file: %s}", pki.caFile)
	withClient := fmt.Sprintf("tls: {ca_file: %s, cert_file: %s, key_file: %s}", pki.caFile, clientCert, clientKey)
	for _, tc := range []struct {
		name, base, tls string
		wantErr         string // "" for success
	}{
		{"our CA", plain.URL, ca, ""},
		{"system roots do not know our CA", plain.URL, "", "certificate signed by unknown authority"},
		{"client certificate required and sent", mutual.URL, withClient, ""},
		{"client certificate required and missing", mutual.URL, ca, "certificate"},
		{"server name override", named.URL, fmt.Sprintf("tls: {ca_file: %s, server_name: api.internal}", pki.caFile), ""},
		{"server name mismatch", named.URL, ca, "cannot validate certificate for 127.0.0.1"},
		{"TLS 1.1 refused", old.URL, ca, "protocol version"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, err := tlsAdapter(t, tc.base, tc.tls)
			if err != nil {
				t.Fatal(err)
			}
			_, err = a.c.do(context.Background(), "GET", tc.base+"/contacts", nil)
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("GET: %v", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("GET: %v, want an error with %q", err, tc.wantErr)
			}
		})
	}
}

func TestTLSConfigErrors(t *testing.T) {
	pki := newTestPKI(t)
	_, certFile, keyFile := pki.issue(t, "client", true, "sync")
	loose := filepath.Join(pki.dir, "loose.key")
	b, _ := os.ReadFile(keyFile)
	if err := os.WriteFile(loose, b, 0o644); err != nil {
		t.Fatal(err)
	}
	notPEM := filepath.Join(pki.dir, "not.pem")
	if err := os.WriteFile(notPEM, []byte("hello"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, base, tls, want string
	}{
		{"tls on http", "http://127.0.0.1:1", "tls: {ca_file: " + pki.caFile + "}", "config tls: set, and base_url"},
		{"cert without key", "https://127.0.0.1:1", "tls: {cert_file: " + certFile + "}", "config tls: a client certificate needs cert_file and key_file"},
		{"key readable by others", "https://127.0.0.1:1", "tls: {cert_file: " + certFile + ", key_file: " + loose + "}", "readable by others"},
		{"CA file without certificates", "https://127.0.0.1:1", "tls: {ca_file: " + notPEM + "}", "holds no PEM certificate"},
		{"CA file missing", "https://127.0.0.1:1", "tls: {ca_file: /nonexistent/ca.pem}", "config tls.ca_file"},
		{"no skip switch", "https://127.0.0.1:1", "tls: {insecure_skip_verify: true}", "insecure_skip_verify"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tlsAdapter(t, tc.base, tc.tls)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error with %q", err, tc.want)
			}
		})
	}
}
