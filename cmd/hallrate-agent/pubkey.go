package main

import (
	"context"
	"crypto/ed25519"
	"fmt"

	"github.com/hallrate/hallrate/config"
	"github.com/hallrate/hallrate/devkey"
	"github.com/hallrate/hallrate/internal/cli"
	"github.com/hallrate/hallrate/record"
)

// cmdPubkey prints the device's public key for the hall's trusted keys
// file, making the key first if the terminal has none yet.
func cmdPubkey(_ context.Context, args []string, io cli.IO) error {
	fs := program().Flags("pubkey", "Print this terminal's public signing key (base64, as the status message carries it),\nmaking the key if there is none yet.", io)
	path := fs.String("config", config.DefaultPath, "configuration file")
	if err := cli.Parse(fs, args); err != nil {
		return err
	}
	cfg, err := config.Load(*path)
	if err != nil {
		return err
	}
	key, _, err := devkey.LoadOrCreate(cfg.KeyPath())
	if err != nil {
		return fmt.Errorf("config: device.key_file: %w", err)
	}
	fmt.Fprintf(io.Out, "%s %s\n", cfg.Device.ID, record.EncodePublicKey(key.Public().(ed25519.PublicKey)))
	return nil
}
