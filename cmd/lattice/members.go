package main

import (
	"encoding/json"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/cockroachdb/errors"
	"github.com/lattice-crdt/lattice/sidecar"
	"github.com/spf13/cobra"
)

// membersCmd lists the cluster's members as one node sees them.
func membersCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:     "members [--json]",
		Short:   "List the cluster's members as this node sees them",
		GroupID: "client",
		Long: `List the cluster's members as this node sees them: this node first, then each
peer with its replica ID, state, version, addresses, lag, last contact, the
deltas queued for it, its stream and whether its merge rules differ.`,
		Args: argsBetween(0, 0),
	}
	o := addClientFlags(cmd)
	cmd.Flags().BoolVar(&asJSON, "json", false, "print this node and its members as JSON")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		c, err := o.client()
		if err != nil {
			return err
		}
		var s sidecar.Status
		if err := c.Do(cmd.Context(), "GET", "/v1/status", nil, &s); err != nil {
			return err
		}
		out := cmd.OutOrStdout()
		if asJSON {
			b, err := json.Marshal(map[string]any{"node": s.Node, "replica": s.Replica, "version": s.Version, "members": s.Members})
			if err != nil {
				return errors.Wrap(err, "encode members")
			}
			return printJSON(out, b)
		}
		now := s.Time
		if now.IsZero() {
			now = time.Now()
		}
		tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "name\treplica\tstate\tversion\tgossip\tapi\tlag\tlast contact\tqueued\tstream\tschema")
		fmt.Fprintf(tw, "%s (this node)\t%s\talive\t%s\t\t\t\t\t\t\t\n", s.Node, s.Replica, s.Version)
		for _, m := range s.Members {
			stream, schema, contact := "down", "same", "never"
			if m.Connected {
				stream = "up"
			}
			if len(m.SchemaMismatch) > 0 {
				schema = "differs: " + strings.Join(m.SchemaMismatch, ",")
			}
			if !m.LastContact.IsZero() {
				contact = humanDuration(now.Sub(m.LastContact)) + " ago"
			}
			lag := humanDuration(time.Duration(m.LagMS * float64(time.Millisecond)))
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\n", m.Name, m.Replica, m.State, m.Version, m.Addr, m.APIAddr,
				lag, contact, m.QueuedDeltas, stream, schema)
		}
		return tw.Flush()
	}
	return cmd
}
