package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/hallrate/hallrate/hall/config"
	"github.com/hallrate/hallrate/hall/trust"
	"github.com/hallrate/hallrate/internal/cli"
)

func cmdACL(_ context.Context, args []string, io cli.IO) error {
	fs := program().Flags("acl", "Print the hall Mosquitto's acl_file made from the device inventory (trust.keys_file):\n"+
		"each device writes only its counter's rating and status and reads only its ticket; the\n"+
		"collector reads everything and writes tickets and alerts. See docs/mosquitto/hall.conf.", io)
	path := fs.String("config", config.DefaultPath, "configuration file (trust.keys_file, trust.collector_identity, mqtt.topic_prefix)")
	keys := fs.String("keys", "", "device inventory `FILE` instead of trust.keys_file")
	collector := fs.String("collector", "", "the collector's certificate `NAME` instead of trust.collector_identity")
	out := fs.String("out", "", "write the ACL to `FILE` (replaced atomically) instead of standard output")
	if err := cli.Parse(fs, args); err != nil {
		return err
	}
	explicit := false
	fs.Visit(func(f *flag.Flag) { explicit = explicit || f.Name == "config" })
	cfg, err := config.Load(*path, !explicit)
	if err != nil {
		return err
	}
	if *keys == "" {
		*keys = cfg.Trust.KeysFile
	}
	if *keys == "" {
		fmt.Fprintln(io.Err, "acl: no device inventory: set trust.keys_file or -keys")
		return cli.ErrUsage
	}
	if *collector == "" {
		*collector = cfg.Trust.CollectorIdentity
	}
	inv, err := trust.LoadInventory(*keys)
	if err != nil {
		return err
	}
	var b bytes.Buffer
	if err := trust.ACL(&b, inv, cfg.MQTT.TopicPrefix, *collector); err != nil {
		return err
	}
	if *out == "" {
		_, err := io.Out.Write(b.Bytes())
		return err
	}
	return writeFileAtomic(*out, b.Bytes())
}

// writeFileAtomic replaces path with data, so a broker reloading its ACL
// never reads half a file.
func writeFileAtomic(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".acl-*")
	if err != nil {
		return fmt.Errorf("acl: %w", err)
	}
	_, werr := tmp.Write(data)
	serr := tmp.Sync()
	cerr := tmp.Close()
	if err := errors.Join(werr, serr, cerr); err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("acl: write %s: %w", path, err)
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("acl: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("acl: %w", err)
	}
	return nil
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return fmt.Errorf("write json: %w", err)
	}
	return nil
}
