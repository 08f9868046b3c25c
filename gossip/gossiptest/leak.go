package gossiptest

import (
	"fmt"
	"os"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// VerifyTestMain runs a package's tests and fails the package if goroutines
// outlive them. It is goleak.VerifyTestMain with a longer deadline: after
// Shutdown, memberlist's probe goroutines still wait out their own timers
// (up to a probe interval and timeout, about 1.5s with the LAN preset),
// longer than goleak's default half second of retries. Packages that run
// gossip nodes call it from TestMain.
func VerifyTestMain(m *testing.M) {
	code := m.Run()
	if code == 0 {
		deadline := time.Now().Add(15 * time.Second)
		for {
			err := goleak.Find()
			if err == nil {
				break
			}
			if time.Now().After(deadline) {
				fmt.Fprintf(os.Stderr, "goleak: goroutines outlived the tests: %v\n", err)
				code = 1
				break
			}
		}
	}
	os.Exit(code)
}
