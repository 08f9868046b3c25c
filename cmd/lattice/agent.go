package main

import (
	"encoding/base64"
	"io"
	"os"
	"time"

	"github.com/cockroachdb/errors"
	"github.com/lattice-crdt/lattice/gossip"
	"github.com/lattice-crdt/lattice/sidecar"
	"github.com/spf13/cobra"
)

func agentCmd() *cobra.Command {
	var (
		configPath, name, data, bind, advertise, api, tokenFile, cluster, keyFile string
		adapterKind, dsn, dsnFile, logLevel, logFormat                            string
		join                                                                      listFlag
	)
	cmd := &cobra.Command{
		Use:     "agent [--config FILE] [flags]",
		Short:   "Run a sidecar",
		GroupID: "agent",
		Long: `Run a sidecar beside one system: capture its changes, merge them with the
other sidecars' and write the merged state back into it.

Settings come from the YAML file given with --config (see docs/config.md);
each flag below overrides the key it names. Secrets never go on the command
line: the API token comes from --token-file, api.token_file or LATTICE_TOKEN,
a DSN with a password from --dsn-file, adapter.dsn_file or LATTICE_DSN, the
gossip key from --key-file, key_file or LATTICE_GOSSIP_KEY (the key file's
content).`,
		Example: `  lattice agent --config /etc/lattice/crm.yaml
  lattice agent --name crm --data /var/lib/lattice/crm --adapter sqlite --dsn crm.db \
      --bind 10.0.0.5:7946 --join 10.0.0.6:7946 --key-file gossip.key --token-file api.token`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var cfg sidecar.Config
			if configPath != "" {
				var err error
				if cfg, err = sidecar.LoadConfig(configPath); err != nil {
					return err
				}
			}
			set := func(dst *string, v string) {
				if v != "" {
					*dst = v
				}
			}
			set(&cfg.Node, name)
			set(&cfg.Data, data)
			set(&cfg.Bind, bind)
			set(&cfg.Advertise, advertise)
			set(&cfg.API.Addr, api)
			set(&cfg.Cluster, cluster)
			set(&cfg.KeyFile, keyFile)
			set(&cfg.Adapter.Kind, adapterKind)
			set(&cfg.Log.Level, logLevel)
			set(&cfg.Log.Format, logFormat)
			// Secrets: a flag names a file and overrides the config; the
			// environment is used only when neither names one.
			switch env := os.Getenv("LATTICE_TOKEN"); {
			case tokenFile != "":
				cfg.API.Token, cfg.API.TokenFile = "", tokenFile
			case env != "" && cfg.API.Token == "" && cfg.API.TokenFile == "":
				if err := sidecar.CheckToken(env, "LATTICE_TOKEN"); err != nil {
					return err
				}
				cfg.API.Token = env
			}
			// The gossip key likewise: a file named by a flag or the
			// config, else LATTICE_GOSSIP_KEY (the key file's content).
			if env := os.Getenv("LATTICE_GOSSIP_KEY"); env != "" && keyFile == "" && cfg.KeyFile == "" {
				keys, err := gossip.ParseKeys(env, "LATTICE_GOSSIP_KEY")
				if err != nil {
					return err
				}
				cfg.Keys = keys
			}
			switch env := os.Getenv("LATTICE_DSN"); {
			case dsn != "":
				cfg.Adapter.DSN, cfg.Adapter.DSNFile = dsn, ""
			case dsnFile != "":
				cfg.Adapter.DSN, cfg.Adapter.DSNFile = "", dsnFile
			case env != "" && cfg.Adapter.DSN == "" && cfg.Adapter.DSNFile == "":
				cfg.Adapter.DSN = env
			}
			if len(join) > 0 {
				cfg.Join = join
			}
			if err := cfg.Validate(); err != nil {
				return err
			}
			log := sidecar.NewLogger(cmd.ErrOrStderr(), cfg.Log)
			if sidecar.DSNHasPassword(dsn) {
				log.Warn("the --dsn flag holds a password, which every user of this machine can read in the process list",
					"hint", "put the DSN in a file only you can read (chmod 600) and pass --dsn-file FILE, or set LATTICE_DSN")
			}
			ctx := cmd.Context()
			a, err := sidecar.Start(ctx, cfg, sidecar.Options{Logger: log})
			if err != nil {
				return err
			}
			select {
			case <-ctx.Done():
				log.Info("shutting down")
			case <-a.Done():
			}
			closed := make(chan error, 1)
			go func() { closed <- a.Close() }()
			timer := time.NewTimer(cfg.ShutdownTimeout)
			defer timer.Stop()
			select {
			case err := <-closed:
				if a.Err() != nil {
					return a.Err()
				}
				return err
			case <-timer.C:
				err := errors.Newf("shutdown did not finish within shutdown_timeout (%s); exiting without waiting for it", cfg.ShutdownTimeout)
				if a.Err() != nil {
					err = errors.WithSecondaryError(a.Err(), err)
				}
				return err
			}
		},
	}
	f := cmd.Flags()
	f.SortFlags = false
	f.StringVar(&configPath, "config", "", "YAML config `FILE` (the flags below override it)")
	f.StringVar(&name, "name", "", "unique node `NAME` (config: node)")
	f.StringVar(&data, "data", "", "`DIR` of the store (config: data)")
	f.StringVar(&bind, "bind", "", "gossip bind address `HOST:PORT` (config: bind)")
	f.StringVar(&advertise, "advertise", "", "gossip address peers use, `IP:PORT` (config: advertise)")
	f.Var(&join, "join", "members to join (`ADDR`: host:port), comma-separated or repeated (config: join)")
	f.StringVar(&api, "api", "", "HTTP API listen `ADDR` (host:port), or off (config: api.addr)")
	f.StringVar(&tokenFile, "token-file", "", "`FILE` holding the API bearer token, private to its owner (config: api.token_file; env LATTICE_TOKEN)")
	f.StringVar(&cluster, "cluster", "", "cluster `LABEL` (config: cluster)")
	f.StringVar(&keyFile, "key-file", "", "gossip key `FILE` (config: key_file)")
	f.StringVar(&adapterKind, "adapter", "", "adapter `KIND`: none, sqlite, postgres or http (config: adapter.kind)")
	f.StringVar(&dsn, "dsn", "", "adapter `DSN`: a file path for sqlite, a URL for postgres, a YAML config file for http (config: adapter.dsn); one with a password belongs in --dsn-file")
	f.StringVar(&dsnFile, "dsn-file", "", "`FILE` holding the adapter DSN, private to its owner (config: adapter.dsn_file; env LATTICE_DSN)")
	f.StringVar(&logLevel, "log-level", "", "log `LEVEL`: debug, info, warn or error (config: log.level)")
	f.StringVar(&logFormat, "log-format", "", "log `FORMAT`: text or json (config: log.format)")
	for _, n := range []string{"config", "token-file", "key-file", "dsn-file"} {
		_ = cmd.MarkFlagFilename(n)
	}
	_ = cmd.MarkFlagDirname("data")
	fixedChoices(cmd, "adapter", "none", "sqlite", "postgres", "http")
	fixedChoices(cmd, "log-level", "debug", "info", "warn", "error")
	fixedChoices(cmd, "log-format", "text", "json")
	return cmd
}

// fixedChoices completes flag with one of choices.
func fixedChoices(cmd *cobra.Command, flag string, choices ...string) {
	_ = cmd.RegisterFlagCompletionFunc(flag, cobra.FixedCompletions(choices, cobra.ShellCompDirectiveNoFileComp))
}

func keygenCmd() *cobra.Command {
	var out string
	cmd := &cobra.Command{
		Use:     "keygen [--out FILE]",
		Short:   "Make a 256-bit gossip encryption key",
		GroupID: "tools",
		Long: `Make a 256-bit gossip encryption key, base64-encoded, for key_file.
With --out the key goes into a new file for its owner alone (mode 0600);
keygen never overwrites a file. Every sidecar of a cluster needs the same key.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			key, err := gossip.GenerateKey()
			if err != nil {
				return err
			}
			line := base64.StdEncoding.EncodeToString(key) + "\n"
			if out == "" {
				_, err := io.WriteString(cmd.OutOrStdout(), line)
				return err
			}
			f, err := os.OpenFile(out, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
			if err != nil {
				return errors.WithHint(errors.Wrapf(err, "create %s", out), "keygen never overwrites a key file; to rotate, see docs/security.md")
			}
			if _, err := io.WriteString(f, "# lattice gossip key: the first key encrypts, all decrypt\n"+line); err != nil {
				f.Close()
				return err
			}
			return f.Close()
		},
	}
	cmd.Flags().StringVar(&out, "out", "", "write the key to a new `FILE` (mode 0600) instead of standard output")
	_ = cmd.MarkFlagFilename("out")
	return cmd
}
