package sidecar

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// writeCert writes a CA and a server certificate for 127.0.0.1 signed by
// it, and returns the paths of the CA, the certificate and its key.
func writeCert(t *testing.T) (ca, cert, key string) {
	t.Helper()
	dir := t.TempDir()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "lattice test ca"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	srvKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	srvTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, KeyUsage: x509.KeyUsageDigitalSignature,
	}
	srvDER, err := x509.CreateCertificate(rand.Reader, srvTmpl, caCert, &srvKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(srvKey)
	if err != nil {
		t.Fatal(err)
	}
	write := func(name, typ string, der []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	return write("ca.pem", "CERTIFICATE", caDER), write("cert.pem", "CERTIFICATE", srvDER), write("key.pem", "EC PRIVATE KEY", keyDER)
}

func TestAPIServesTLS(t *testing.T) {
	ca, cert, key := writeCert(t)
	const token = "tls-test-token-0123456789"
	a := startAgent(t, func(c *Config) {
		c.API.TLS = TLSConfig{Cert: cert, Key: key}
		c.API.Token = token
	})
	ctx := context.Background()
	c, err := NewClient("https://"+a.APIAddr(), token, ca)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Put(ctx, "things", "k", map[string]any{"v": 1}); err != nil {
		t.Fatalf("put over https: %v", err)
	}
	if _, _, err := c.Digest(ctx); err != nil {
		t.Fatalf("digest over https: %v", err)
	}
	// A client that does not trust the CA is refused, and plain HTTP gets
	// no API answer.
	untrusted, _ := NewClient("https://"+a.APIAddr(), token, "")
	if _, _, err := untrusted.Digest(ctx); err == nil {
		t.Fatal("a client without the CA was served")
	}
	resp, err := http.Get("http://" + a.APIAddr() + "/v1/digest")
	if err == nil {
		defer resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			t.Fatal("plain http was served the API")
		}
	}
}

func TestAPITLSConfigErrors(t *testing.T) {
	_, cert, _ := writeCert(t)
	cfg := Config{Node: "n", Data: t.TempDir(), Bind: "127.0.0.1:0", API: APIConfig{Addr: "127.0.0.1:0", TLS: TLSConfig{Cert: cert, Key: cert}}}
	if _, err := Start(context.Background(), cfg, Options{Logger: testLogger(t)}); err == nil {
		t.Fatal("a certificate as its own key was accepted")
	} else if want := "config api.tls"; !strings.Contains(err.Error(), want) {
		t.Fatalf("error %q does not name %s", err, want)
	}
}
