package sidecar

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cockroachdb/errors"
	"github.com/lattice-crdt/lattice/gossip"
)

// Gossip on a network address without a key refuses to start, unless the
// config says insecure: true or gives a key file.
func TestGossipInTheClearOnANetworkAddressIsRefused(t *testing.T) {
	cfg := Config{
		Node: "n1",
		Data: filepath.Join(t.TempDir(), "data"),
		Bind: "0.0.0.0:0",
		API:  APIConfig{Addr: "127.0.0.1:0"},
	}
	a, err := Start(context.Background(), cfg, Options{Logger: testLogger(t)})
	if err == nil {
		_ = a.Close()
		t.Fatal("an agent without a key started on 0.0.0.0")
	}
	if !errors.Is(err, gossip.ErrInsecure) || !strings.Contains(errors.FlattenHints(err), "lattice keygen") {
		t.Fatalf("Start = %v (hint %q), want ErrInsecure with a hint to make a key", err, errors.FlattenHints(err))
	}

	startAgent(t, func(c *Config) { c.Node, c.Bind, c.Insecure = "n2", "0.0.0.0:0", true })

	key, err := gossip.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(t.TempDir(), "gossip.key")
	if err := os.WriteFile(keyFile, []byte(gossip.EncodeKey(key)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	startAgent(t, func(c *Config) { c.Node, c.Bind, c.KeyFile = "n3", "0.0.0.0:0", keyFile })
	// The key given directly (LATTICE_GOSSIP_KEY in the CLI) counts too.
	n4 := startAgent(t, func(c *Config) { c.Node, c.Bind, c.Keys = "n4", "0.0.0.0:0", [][]byte{key} })
	if ks := n4.Node().Keys(); len(ks) != 1 || !bytes.Equal(ks[0], key) {
		t.Fatalf("an agent given Keys gossips with keys %x", ks)
	}
}
