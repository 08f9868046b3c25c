package http

import (
	"crypto/tls"
	"crypto/x509"
	nethttp "net/http"
	"os"
	"strings"

	"github.com/cockroachdb/errors"
)

// TLSConfig sets how the adapter checks an https API's certificate and
// how it proves who it is. The server's certificate is always verified:
// there is no switch to skip that. TLS 1.2 is the least version spoken.
type TLSConfig struct {
	// CAFile is a PEM bundle of the certificate authorities that may sign
	// the server's certificate, in place of the system's roots (an
	// internal CA).
	CAFile string `yaml:"ca_file"`
	// CertFile and KeyFile are the client certificate and its private key
	// (PEM), sent when the server asks for one (mutual TLS). KeyFile must
	// be private to its owner.
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
	// ServerName is the name the server's certificate must carry, when it
	// differs from base_url's host (an API reached by IP address or
	// through a tunnel).
	ServerName string `yaml:"server_name"`
}

// set reports whether any TLS option is given.
func (c TLSConfig) set() bool {
	return c.CAFile != "" || c.CertFile != "" || c.KeyFile != "" || c.ServerName != ""
}

// check validates the options against the base URL: they apply to https
// only, and a certificate needs its key.
func (c TLSConfig) check(baseURL string) error {
	if !c.set() {
		return nil
	}
	if !strings.HasPrefix(baseURL, "https://") {
		return errors.WithHint(keyErr("tls", "set, and base_url %q is not https", baseURL),
			"TLS options apply to an https base_url; use https:// or drop tls")
	}
	if (c.CertFile == "") != (c.KeyFile == "") {
		return errors.WithHint(keyErr("tls", "a client certificate needs cert_file and key_file"), "set both or neither")
	}
	return nil
}

// clientConfig builds the tls.Config of the adapter's requests, reading
// the files it names.
func (c TLSConfig) clientConfig() (*tls.Config, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: c.ServerName}
	if c.CAFile != "" {
		pem, err := os.ReadFile(c.CAFile)
		if err != nil {
			return nil, errors.WithHint(errors.Wrap(err, "config tls.ca_file"), "a PEM file of the CA certificates that sign the API's certificate")
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, errors.WithHint(errors.Newf("config tls.ca_file: %s holds no PEM certificate", c.CAFile),
				"a PEM file with -----BEGIN CERTIFICATE----- blocks")
		}
		tc.RootCAs = pool
	}
	if c.CertFile != "" {
		fi, err := os.Stat(c.KeyFile)
		if err != nil {
			return nil, errors.Wrap(err, "config tls.key_file")
		}
		if fi.Mode().Perm()&0o077 != 0 {
			return nil, errors.WithHint(errors.Newf("config tls.key_file: %s is readable by others (mode %v)", c.KeyFile, fi.Mode().Perm()),
				"chmod 600 "+c.KeyFile)
		}
		cert, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile)
		if err != nil {
			return nil, errors.WithHint(errors.Wrap(err, "config tls.cert_file, tls.key_file"),
				"a PEM certificate and the PEM private key that belongs to it")
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, nil
}

// transport returns the HTTP transport of the adapter's requests: the
// standard one with cfg's TLS settings, at most cfg.Concurrency
// connections to the API.
func transport(cfg *Config) (*nethttp.Transport, error) {
	tc, err := cfg.TLS.clientConfig()
	if err != nil {
		return nil, err
	}
	t := nethttp.DefaultTransport.(*nethttp.Transport).Clone()
	t.TLSClientConfig = tc
	t.MaxConnsPerHost = cfg.Concurrency
	t.MaxIdleConnsPerHost = cfg.Concurrency
	return t, nil
}
