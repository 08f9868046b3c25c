package gossip

import (
	"bytes"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
)

func TestLogBridgeLevels(t *testing.T) {
	for _, tc := range []struct {
		line, level, msg string
	}{
		{"2026/12/02 14:00:00 [DEBUG] memberlist: Stream connection from=127.0.0.1:1", "DEBUG", "Stream connection"},
		{"2026/12/02 14:00:00 [WARN] memberlist: Was able to connect to b over TCP but UDP probes failed", "WARN", "Was able to connect"},
		{"2026/12/02 14:00:00 [ERR] memberlist: Failed to send gossip to 10.0.0.2:7946: boom", "ERROR", "Failed to send gossip"},
		// A probe timeout is the failure detector's business, not a fault.
		{"2026/12/02 14:00:00 [ERR] memberlist: Failed fallback TCP ping: timeout 1s", "WARN", "Failed fallback TCP ping"},
	} {
		var buf bytes.Buffer
		b := &logBridge{log: slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})), closing: new(atomic.Bool)}
		if _, err := b.Write([]byte(tc.line + "\n")); err != nil {
			t.Fatal(err)
		}
		out := buf.String()
		if !strings.Contains(out, "level="+tc.level) || !strings.Contains(out, tc.msg) || strings.Contains(out, "memberlist: ") {
			t.Errorf("%q logged as %q, want level %s and message %q", tc.line, out, tc.level, tc.msg)
		}
	}
}
