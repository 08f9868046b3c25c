package gossip

import (
	"bytes"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/cockroachdb/errors"
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
		// So is a state sync with a peer whose process is gone.
		{"2026/12/02 14:00:00 [ERR] memberlist: Push/Pull with n2 failed: dial tcp 127.0.0.1:40947: connect: connection refused", "WARN", "Push/Pull with n2 failed"},
		{"2026/12/02 14:00:00 [ERR] memberlist: Push/Pull with n2 failed: remote node is not a member", "ERROR", "Push/Pull with n2 failed"},
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

// memberlist's refusals of a node for its key or label (the lines of the
// pinned version) go to the refusal hook, not to the log as errors.
func TestLogBridgeRefusals(t *testing.T) {
	for _, tc := range []struct {
		line   string
		want   refusal
		refuse bool
	}{
		{`[ERR] memberlist: discarding stream with unacceptable label "staging": from=10.0.0.9:4000`, refusal{stream: true, reason: "label"}, true},
		{`[ERR] memberlist: failed to receive and remove the stream label header: boom from=10.0.0.9:4000`, refusal{stream: true, reason: "label"}, true},
		{`[ERR] memberlist: failed to receive: no installed keys could decrypt the message from=10.0.0.9:4000`, refusal{stream: true, reason: "key"}, true},
		{`[ERR] memberlist: failed to receive: encryption is configured but remote state is not encrypted from=10.0.0.9:4000`, refusal{stream: true, reason: "key"}, true},
		{`[ERR] memberlist: failed to receive: remote state is encrypted and encryption is not configured from=10.0.0.9:4000`, refusal{stream: true, reason: "key"}, true},
		{`[ERR] memberlist: discarding packet with unacceptable label "x": from=10.0.0.9:4000`, refusal{reason: "label"}, true},
		{`[ERR] memberlist: Decrypt packet failed: no installed keys could decrypt the message from=10.0.0.9:4000`, refusal{reason: "key"}, true},
		{`[ERR] memberlist: failed to receive: EOF from=10.0.0.9:4000`, refusal{}, false},
		{`[DEBUG] memberlist: discarding stream with unacceptable label`, refusal{}, false},
	} {
		var buf bytes.Buffer
		var got []refusal
		b := &logBridge{log: slog.New(slog.NewTextHandler(&buf, nil)), closing: new(atomic.Bool),
			refused: func(r refusal) { got = append(got, r) }}
		if _, err := b.Write([]byte("2026/12/02 14:00:00 " + tc.line + "\n")); err != nil {
			t.Fatal(err)
		}
		switch {
		case !tc.refuse && len(got) > 0:
			t.Errorf("%q: refusal %+v, want none", tc.line, got)
		case tc.refuse && (len(got) != 1 || got[0].stream != tc.want.stream || got[0].reason != tc.want.reason || !strings.Contains(got[0].detail, "10.0.0.9:4000")):
			t.Errorf("%q: refusals %+v, want one %+v", tc.line, got, tc.want)
		case tc.refuse && buf.Len() > 0:
			t.Errorf("%q was logged as well: %s", tc.line, buf.String())
		}
	}
}

func TestRefusedJoin(t *testing.T) {
	for msg, want := range map[string]string{
		"1 error occurred:\n\t* failed to join 10.0.0.1:7946: EOF\n\n":                                                 "cluster label",
		"1 error occurred:\n\t* failed to join 10.0.0.1:7946: no installed keys could decrypt the message\n\n":         "gossip key",
		"failed to join 10.0.0.1:7946: remote state is encrypted and encryption is not configured":                     "gossip key",
		"failed to join 10.0.0.1:7946: read tcp 10.0.0.2:5->10.0.0.1:7946: read: connection reset by peer":             "cluster label",
		"1 error occurred:\n\t* failed to join 10.0.0.1:7946: dial tcp 10.0.0.1:7946: connect: connection refused\n\n": "",
		"failed to join 10.0.0.1:7946: dial tcp 10.0.0.1:7946: i/o timeout":                                            "",
	} {
		got := refusedJoin(errors.New(msg))
		if (want == "") != (got == "") || !strings.Contains(got, want) {
			t.Errorf("refusedJoin(%q) = %q, want it to say %q", msg, got, want)
		}
	}
}
