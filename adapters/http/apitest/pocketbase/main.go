// Command pocketbase is the PocketBase server that the apitest package builds
// and starts for integration tests. It is PocketBase with the jsvm plugin, so
// that tests can load pb_hooks/*.pb.js files through --hooksDir.
//
// It is its own module (it needs a newer Go than Lattice and must never become
// a dependency of the lattice binary); the apitest starter builds it with
// GOTOOLCHAIN set to the toolchain its go.mod names.
package main

import (
	"log"
	"os"

	"github.com/pocketbase/pocketbase"
	"github.com/pocketbase/pocketbase/plugins/jsvm"
)

func main() {
	app := pocketbase.New()

	var hooksDir string
	app.RootCmd.PersistentFlags().StringVar(&hooksDir, "hooksDir", "", "the directory with the JS app hooks")
	_ = app.RootCmd.ParseFlags(os.Args[1:])

	// Tests restart the server themselves; a file watcher would restart it
	// behind their back.
	jsvm.MustRegister(app, jsvm.Config{HooksDir: hooksDir, HooksWatch: false, HooksPoolSize: 4})

	if err := app.Start(); err != nil {
		log.Fatal(err)
	}
}
