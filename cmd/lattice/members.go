package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/cockroachdb/errors"
	"github.com/lattice-crdt/lattice/sidecar"
)

// runMembers lists the cluster's members as one node sees them.
func runMembers(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("members", "members [--json]", stderr)
	client := clientFlags(fs)
	asJSON := fs.Bool("json", false, "print the members as JSON")
	c, err := client(args, 0, 0)
	if err != nil {
		return err
	}
	var s sidecar.Status
	if err := c.Do(ctx, "GET", "/v1/status", nil, &s); err != nil {
		return err
	}
	if *asJSON {
		b, err := json.Marshal(map[string]any{"node": s.Node, "members": s.Members})
		if err != nil {
			return errors.Wrap(err, "encode members")
		}
		return printJSON(stdout, b)
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "name\treplica\tstate\tversion\tgossip\tapi\tlag\tqueued\tstream\tschema")
	fmt.Fprintf(tw, "%s (this node)\t%s\talive\t%s\t\t\t\t\t\t\n", s.Node, s.Replica, s.Version)
	for _, m := range s.Members {
		stream, schema := "down", "same"
		if m.Connected {
			stream = "up"
		}
		if len(m.SchemaMismatch) > 0 {
			schema = "differs: " + strings.Join(m.SchemaMismatch, ",")
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%.1fms\t%d\t%s\t%s\n", m.Name, m.Replica, m.State, m.Version, m.Addr, m.APIAddr, m.LagMS, m.QueuedDeltas, stream, schema)
	}
	return tw.Flush()
}
