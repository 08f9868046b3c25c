package demo

import (
	"testing"

	"github.com/lattice-crdt/lattice/gossip/gossiptest"
)

func TestMain(m *testing.M) { gossiptest.VerifyTestMain(m) }
