package sidecar

import (
	"context"
	"time"

	"github.com/cockroachdb/errors"
	"github.com/lattice-crdt/lattice/clock"
	"github.com/lattice-crdt/lattice/crdt"
	"github.com/lattice-crdt/lattice/sidecar/engine"
	"go.yaml.in/yaml/v3"
)

// Initial sync modes (initial_sync in the config).
const (
	// SyncCluster keeps the merged state of every record the store knows;
	// the system's rows of records it does not know become new records.
	SyncCluster = engine.JoinCluster
	// SyncSystem takes the system's rows as local changes: they win over
	// the merged state.
	SyncSystem = engine.JoinSystem
	// SyncNewest compares a timestamp field per record: the side whose
	// value is newer wins.
	SyncNewest = engine.JoinNewest
)

// InitialSyncConfig says how a snapshot of the system is reconciled with
// the merged state when both hold the same records: when a sidecar with an
// empty store starts beside a system that holds rows (after it bootstrapped
// from its peers), and when capture cannot resume (a database restored
// from a backup, a replaced SQLite file, an invalidated PostgreSQL slot).
// In YAML it is cluster, system, or {newest: <field>}.
type InitialSyncConfig struct {
	// Mode is cluster (default), system or newest.
	Mode string `yaml:"mode"`
	// Newest names the field compared by mode newest (a column such as
	// updated_at, in collection space).
	Newest string `yaml:"newest"`
}

// UnmarshalYAML accepts a bare mode name or a mapping {newest: field}.
func (s *InitialSyncConfig) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		*s = InitialSyncConfig{Mode: n.Value}
		return nil
	}
	type plain InitialSyncConfig
	var p plain
	if err := n.Decode(&p); err != nil {
		return err
	}
	*s = InitialSyncConfig(p)
	if s.Mode == "" && s.Newest != "" {
		s.Mode = SyncNewest
	}
	return nil
}

// join is the engine's form of the policy.
func (s InitialSyncConfig) join() engine.Join { return engine.Join{Mode: s.Mode, Field: s.Newest} }

func (s *InitialSyncConfig) fill() error {
	switch s.Mode {
	case "":
		s.Mode = SyncCluster
	case SyncCluster, SyncSystem:
	case SyncNewest:
		if s.Newest == "" {
			return errors.WithHint(keyErr("initial_sync.newest", "missing"), "name a timestamp field: initial_sync: {newest: updated_at}")
		}
		if err := crdt.ValidateName(s.Newest); err != nil {
			return keyErr("initial_sync.newest", "%v", err)
		}
		return nil
	default:
		return errors.WithHint(keyErr("initial_sync", "%q is not a mode", s.Mode),
			"use cluster, system or {newest: <field>}")
	}
	if s.Newest != "" {
		return keyErr("initial_sync.newest", "given with mode %s", s.Mode)
	}
	return nil
}

// bootstrap fills an empty store from a peer before the system's rows are
// read, so that the snapshot compares them with the cluster's state rather
// than with nothing. When a snapshot follows (an adapter without a stored
// cursor) and initial_sync is not system, it retries until a bootstrap
// succeeds: going on without would take every stale row for a new write.
func (a *Agent) bootstrap(ctx context.Context) {
	must := false
	if a.adp != nil && a.cfg.InitialSync.Mode != SyncSystem {
		cur, err := a.store.Cursor(a.cursorName)
		must = err == nil && len(cur) == 0
	}
	delay := 500 * time.Millisecond
	for attempt := 1; ; attempt++ {
		bctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
		err := a.node.Bootstrap(bctx)
		cancel()
		if err == nil || ctx.Err() != nil {
			return
		}
		if !must {
			a.log.Warn("bootstrap from a peer failed; anti-entropy will fill in", "err", err)
			return
		}
		a.log.Warn("bootstrap from a peer failed; the system's rows are read once it succeeds, so that stale rows cannot win over the cluster's state",
			"attempt", attempt, "err", err, "retry_in", delay,
			"hint", "with initial_sync: system this node starts from its system's rows without waiting")
		if !clock.Sleep(a.clock, ctx.Done(), delay) {
			return
		}
		if len(a.node.Members()) == 0 && len(a.cfg.Join) > 0 {
			if _, err := a.node.Join(ctx, a.cfg.Join); err != nil && ctx.Err() == nil {
				a.log.Debug("join before bootstrap", "err", err)
			}
		}
		delay = min(delay*2, 30*time.Second)
	}
}
