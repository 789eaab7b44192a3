package collector

import (
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"fmt"
	"log/slog"
	"strings"

	"github.com/hallrate/hallrate/hall/config"
	"github.com/hallrate/hallrate/hall/ingest"
	"github.com/hallrate/hallrate/hall/link"
	"github.com/hallrate/hallrate/hall/store"
	"github.com/hallrate/hallrate/hall/trust"
	"github.com/hallrate/hallrate/hall/web"
	"github.com/hallrate/hallrate/record"
)

// trustSetup loads the trusted keys file and the broker TLS files.
func trustSetup(cfg config.Config, log *slog.Logger) (*trust.Inventory, *tls.Config, error) {
	var inv *trust.Inventory
	if cfg.Trust.KeysFile != "" {
		var err error
		if inv, err = trust.LoadInventory(cfg.Trust.KeysFile); err != nil {
			return nil, nil, fmt.Errorf("config: trust.keys_file: %w", err)
		}
		keyed := 0
		for _, d := range inv.Devices() {
			if d.Key != nil {
				keyed++
			}
		}
		log.Info("trusted keys loaded", "file", cfg.Trust.KeysFile, "devices", len(inv.Devices()), "with_key", keyed,
			"accept_unverified", cfg.Trust.AcceptUnverified)
	} else {
		log.Warn("trust.keys_file is not set: no record can be verified; every rating is stored unverified and counts (docs/trust.md)")
	}
	m := cfg.MQTT
	tlsBroker := strings.HasPrefix(m.Broker, "ssl://") || strings.HasPrefix(m.Broker, "mqtts://") ||
		strings.HasPrefix(m.Broker, "tls://") || strings.HasPrefix(m.Broker, "wss://")
	if m.CAFile == "" && m.CertFile == "" && !tlsBroker {
		return inv, nil, nil
	}
	if m.CAFile != "" && !tlsBroker && m.EmbeddedBroker == "" {
		return nil, nil, fmt.Errorf("config: mqtt.broker: %q is plaintext but mqtt.ca_file is set: use ssl:// or mqtts://", m.Broker)
	}
	c, err := link.TLSConfig(m.CAFile, m.CertFile, m.KeyFile)
	if err != nil {
		return nil, nil, fmt.Errorf("config: mqtt.ca_file/cert_file/key_file: %w", err)
	}
	return inv, c, nil
}

func saveInventory(ctx context.Context, db *store.DB, inv *trust.Inventory) error {
	if inv == nil {
		return nil
	}
	var devs []store.DeviceKey
	for _, d := range inv.Devices() {
		k := ""
		if d.Key != nil {
			k = record.EncodePublicKey(d.Key)
		}
		devs = append(devs, store.DeviceKey{Device: d.ID, Hall: d.Hall, Counter: d.Counter, Key: k})
	}
	return db.SaveInventory(ctx, devs)
}

func trustCounters(in *ingest.Ingester) []web.Counter {
	return []web.Counter{
		{Name: "records_verified_total", Help: "Records stored verified: trusted key, assigned counter, chain intact.", Value: func() int64 { return in.Stats().Verified }},
		{Name: "records_unverified_total", Help: "Records stored unverified: no trusted key for their device.", Value: func() int64 { return in.Stats().Unverified }},
		{Name: "records_failed_verification_total", Help: "Records stored flagged: bad signature, unsigned, wrong counter or topic, broken chain.", Value: func() int64 { return in.Stats().Flagged }},
		{Name: "chain_breaks_total", Help: "Links of an epoch's hash chain found broken.", Value: func() int64 { return in.Stats().ChainBreaks }},
		{Name: "conflicting_copies_total", Help: "Records received again with other content than the stored copy.", Value: func() int64 { return in.Stats().Conflicts }},
		{Name: "key_mismatches_total", Help: "Statuses announcing another key than the trusted one.", Value: func() int64 { return in.Stats().KeyMismatches }},
	}
}

// loadFirstKeys reads the first key each device announced, for trust on
// first use across restarts; a key the store holds that does not decode is
// skipped with a warning of its own by the ingester's next status.
func loadFirstKeys(ctx context.Context, db *store.DB) (map[string]ed25519.PublicKey, error) {
	ks, err := db.FirstKeys(ctx)
	if err != nil {
		return nil, err
	}
	out := make(map[string]ed25519.PublicKey, len(ks))
	for d, k := range ks {
		if pub, err := record.DecodePublicKey(k); err == nil {
			out[d] = pub
		}
	}
	return out, nil
}
