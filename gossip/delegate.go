package gossip

import (
	"github.com/cockroachdb/errors"
	"github.com/hashicorp/memberlist"
)

// delegate receives memberlist's callbacks. memberlist calls some of them
// with its node lock held, so none calls back into memberlist or blocks:
// they update the node's own maps and start or stop goroutines.
type delegate struct{ n *Node }

var (
	_ memberlist.Delegate         = (*delegate)(nil)
	_ memberlist.EventDelegate    = (*delegate)(nil)
	_ memberlist.AliveDelegate    = (*delegate)(nil)
	_ memberlist.ConflictDelegate = (*delegate)(nil)
)

// NodeMeta returns the node meta: API and data addresses, version and the
// schema fingerprint.
func (d *delegate) NodeMeta(limit int) []byte {
	b := d.n.metaBytes()
	if len(b) > limit {
		// Config.Validate bounds every field, so this cannot happen.
		d.n.log.Error("node meta over memberlist's limit", "bytes", len(b), "limit", limit)
		return nil
	}
	return b
}

// NotifyMsg ignores memberlist user messages: data travels on streams.
func (d *delegate) NotifyMsg([]byte) {}

// GetBroadcasts has nothing to piggyback: gossip carries membership only.
func (d *delegate) GetBroadcasts(int, int) [][]byte { return nil }

// LocalState carries nothing: push/pull never carries data.
func (d *delegate) LocalState(bool) []byte { return nil }

// MergeRemoteState ignores remote state.
func (d *delegate) MergeRemoteState([]byte, bool) {}

// NotifyJoin starts a sender for a new live member.
func (d *delegate) NotifyJoin(node *memberlist.Node) {
	if node.Name == d.n.cfg.Name {
		return
	}
	d.n.log.Info("member joined", "peer", node.Name, "addr", node.Address())
	d.n.addPeer(node)
}

// NotifyLeave stops the sender of a member that left or died. memberlist
// does not say which (Node.State is not kept up to date in callbacks), so
// the node meta's leaving flag tells them apart.
func (d *delegate) NotifyLeave(node *memberlist.Node) {
	if node.Name == d.n.cfg.Name {
		return
	}
	d.n.log.Info("member gone", "peer", node.Name)
	d.n.removePeer(node.Name, node.Address())
}

// NotifyUpdate restarts the sender when a member's meta changed.
func (d *delegate) NotifyUpdate(node *memberlist.Node) {
	if node.Name == d.n.cfg.Name {
		return
	}
	d.n.addPeer(node)
}

// NotifyAlive refuses members whose node meta this version cannot read.
func (d *delegate) NotifyAlive(node *memberlist.Node) error {
	if node.Name == d.n.cfg.Name {
		return nil
	}
	if _, err := decodeMeta(node.Meta); err != nil {
		d.n.c.rejectedPeers.Add(1)
		return errors.Wrapf(err, "member %s", node.Name)
	}
	return nil
}

// NotifyConflict reports two nodes claiming one name.
func (d *delegate) NotifyConflict(existing, other *memberlist.Node) {
	d.n.c.nameConflicts.Add(1)
	d.n.log.Error("two nodes claim the same name", "name", existing.Name,
		"addr", existing.Address(), "other_addr", other.Address(),
		"hint", "give every node a unique name")
}
