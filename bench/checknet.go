package bench

import (
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/cockroachdb/errors"
)

// Network partitions: with CheckOptions.Partitions, each sidecar runs in a
// network namespace of its own, joined to the others by a bridge in the
// checker's namespace, which also reaches the sidecars' APIs and, for the
// sidecars beside PostgreSQL, lets them reach the server. A partition cuts
// one sidecar off from the others (blackhole routes on both sides, so that
// sends fail at once) and heals after a while; the checker still reaches
// every sidecar, and every sidecar its database. It needs root and the ip
// command (iproute2).

// checkNet is one schedule's namespaces and bridge.
type checkNet struct {
	prefix string   // of every name it creates
	host   string   // the bridge's address, in the checker's namespace
	ns     []string // per node
	ips    []string // per node
}

// CanPartition reports whether this process can set up the network
// namespaces partitions need, and why not.
func CanPartition() (bool, string) {
	if os.Geteuid() != 0 {
		return false, "they need root (network namespaces)"
	}
	if _, err := exec.LookPath("ip"); err != nil {
		return false, "they need the ip command (iproute2)"
	}
	return true, ""
}

func ipCmd(args ...string) error {
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		return errors.Wrapf(err, "ip %s: %s", strings.Join(args, " "), strings.TrimSpace(string(out)))
	}
	return nil
}

// newCheckNet creates a namespace per node on a bridge, in a /24 of
// 10.213.0.0/16 that no address of this host is in, drawn at random. The
// choice and the bridge's address are made under a lock file, so that
// concurrent runs on this host never take the same /24; a failure to
// create the network (a name taken) draws again.
func newCheckNet(nodes int) (*checkNet, error) {
	lock, err := os.OpenFile(filepath.Join(os.TempDir(), "lattice-checknet.lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, errors.Wrap(err, "open the checker's network lock")
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return nil, errors.Wrap(err, "lock the checker's network lock")
	}
	defer func() { _ = syscall.Flock(int(lock.Fd()), syscall.LOCK_UN) }()
	for range 8 {
		var out []byte
		if out, err = exec.Command("ip", "-4", "-o", "addr", "show").Output(); err != nil {
			return nil, errors.Wrap(err, "ip -4 -o addr show")
		}
		var free []int
		for n := 1; n <= 250; n++ {
			if !strings.Contains(string(out), fmt.Sprintf(" 10.213.%d.", n)) {
				free = append(free, n)
			}
		}
		if len(free) == 0 {
			return nil, errors.New("no free /24 in 10.213.0.0/16 for the checker's network")
		}
		var c *checkNet
		if c, err = tryCheckNet(nodes, free[rand.IntN(len(free))]); err == nil {
			return c, nil
		}
	}
	return nil, err
}

// tryCheckNet creates the namespaces and the bridge on subnet.
func tryCheckNet(nodes, subnet int) (c *checkNet, err error) {
	tag := rand.Uint32() & 0xffff
	c = &checkNet{prefix: fmt.Sprintf("lck%04x", tag), host: fmt.Sprintf("10.213.%d.1", subnet)}
	defer func() {
		if err != nil {
			c.close()
		}
	}()
	br := c.prefix + "br"
	if err := ipCmd("link", "add", br, "type", "bridge"); err != nil {
		return c, err
	}
	if err := ipCmd("addr", "add", c.host+"/24", "dev", br); err != nil {
		return c, err
	}
	if err := ipCmd("link", "set", br, "up"); err != nil {
		return c, err
	}
	for i := range nodes {
		ns, ip := fmt.Sprintf("%sn%d", c.prefix, i+1), fmt.Sprintf("10.213.%d.%d", subnet, 10+i)
		c.ns, c.ips = append(c.ns, ns), append(c.ips, ip)
		host, peer := ns+"h", ns+"p"
		for _, args := range [][]string{
			{"netns", "add", ns},
			{"link", "add", host, "type", "veth", "peer", "name", peer},
			{"link", "set", host, "master", br, "up"},
			{"link", "set", peer, "netns", ns},
			{"-n", ns, "addr", "add", ip + "/24", "dev", peer},
			{"-n", ns, "link", "set", peer, "up"},
			{"-n", ns, "link", "set", "lo", "up"},
		} {
			if err := ipCmd(args...); err != nil {
				return c, err
			}
		}
	}
	return c, nil
}

// cut cuts node i off from the other nodes (or, without cut, heals it).
func (c *checkNet) cut(i int, cut bool) error {
	op := "add"
	if !cut {
		op = "del"
	}
	var errs error
	for j := range c.ns {
		if j == i {
			continue
		}
		errs = errors.CombineErrors(errs, ipCmd("-n", c.ns[i], "route", op, "blackhole", c.ips[j]+"/32"))
		errs = errors.CombineErrors(errs, ipCmd("-n", c.ns[j], "route", op, "blackhole", c.ips[i]+"/32"))
	}
	return errs
}

// close removes the namespaces (and with them their veth pairs) and the
// bridge, best effort.
func (c *checkNet) close() {
	for _, ns := range c.ns {
		_ = ipCmd("netns", "del", ns)
	}
	_ = ipCmd("link", "del", c.prefix+"br")
}
