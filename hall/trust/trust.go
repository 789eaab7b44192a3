// Package trust decides how far the collector may believe a press record:
// whether its signature verifies under the key the hall trusts for its
// device, whether that device is assigned to the record's counter, and
// whether the record links into its epoch's hash chain. It knows the device
// inventory (the trusted keys file) and the record format, and nothing of
// MQTT or the database.
package trust

import (
	"bufio"
	"crypto/ed25519"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"github.com/hallrate/hallrate/record"
)

// State is how far a record is believed.
type State string

// The states of a record. A record is stored whatever its state; only a
// verified one (or, where the hall allows it, an unverified one) counts
// toward scores and evaluations, and a flagged one never does.
const (
	// Verified: signed with the device's trusted key, on the device's
	// assigned counter, and not contradicted by its chain.
	Verified State = "verified"
	// Unverified: nothing contradicts it, but the hall holds no trusted key
	// for its device (trust on first use of an announced key included).
	Unverified State = "unverified"
	// Flagged: a check failed; the reasons say which.
	Flagged State = "flagged"
)

// Reasons recorded with a state. A record may carry several.
const (
	// NoTrustedKey: the device has no key in the trusted keys file.
	NoTrustedKey = "no_trusted_key"
	// TOFU: the signature verifies under the key the device announced in
	// its own status message; that proves only that the records come from
	// whoever announced the key (trust on first use), never that this is
	// the hall's terminal.
	TOFU = "tofu"
	// BadSignature: the signature does not verify under the trusted key:
	// a field was changed, or someone else made the record.
	BadSignature = "bad_signature"
	// Unsigned: the device has a trusted key but the record carries no
	// signature.
	Unsigned = "unsigned"
	// WrongCounter: the record names a hall or counter its device is not
	// assigned to (a terminal moved or cloned to another counter).
	WrongCounter = "wrong_counter"
	// WrongTopic: the record arrived on another counter's topic than the
	// one it names. The topic is not signed, so this alone makes a record
	// unverified, not flagged.
	WrongTopic = "wrong_topic"
	// ChainBreak: prev does not match the hash of the previous record of
	// the epoch, or seq 1 carries a prev.
	ChainBreak = "chain_break"
	// Conflict: another record with the same id but different content was
	// received; the first one is kept.
	Conflict = "conflict"
)

// Verdict is the outcome of the checks of one record.
type Verdict struct {
	State   State
	Reasons []string
}

// Reason returns the reasons as one comma-separated string, as stored.
func (v Verdict) Reason() string { return strings.Join(v.Reasons, ",") }

// Flag adds a failed check to v.
func (v *Verdict) Flag(reason string) {
	v.State = Flagged
	if !slices.Contains(v.Reasons, reason) {
		v.Reasons = append(v.Reasons, reason)
	}
}

// Device is one terminal of the inventory.
type Device struct {
	ID, Hall, Counter string
	// Key is the trusted public key; nil while the hall has none yet
	// ("-" in the file).
	Key ed25519.PublicKey
}

// Inventory is the hall's list of terminals: where each is installed and
// the key it signs with. It is read from the trusted keys file, one device
// a line:
//
//	# device  hall  counter  pubkey (base64 ed25519, as `hallrate-agent pubkey` prints it; "-" for none yet)
//	w05-a     h1    W05      3q2+7w...=
type Inventory struct {
	byID  map[string]Device
	order []string
}

// LoadInventory reads the trusted keys file at path.
func LoadInventory(path string) (*Inventory, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("trust: keys file: %w", err)
	}
	defer f.Close()
	inv, err := ParseInventory(f)
	if err != nil {
		return nil, fmt.Errorf("trust: keys file %s: %w", path, err)
	}
	return inv, nil
}

// ParseInventory reads an inventory: lines of device, hall, counter and
// public key separated by blanks; blank lines and lines starting with #
// are skipped. A device listed twice is an error.
func ParseInventory(r io.Reader) (*Inventory, error) {
	inv := &Inventory{byID: map[string]Device{}}
	sc := bufio.NewScanner(r)
	n := 0
	for sc.Scan() {
		n++
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Fields(line)
		if len(f) != 4 {
			return nil, fmt.Errorf("line %d: want 4 columns (device hall counter pubkey), have %d", n, len(f))
		}
		d := Device{ID: f[0], Hall: f[1], Counter: f[2]}
		for _, c := range []struct{ name, v string }{{"device", d.ID}, {"hall", d.Hall}, {"counter", d.Counter}} {
			if !record.ValidID(c.v) {
				return nil, fmt.Errorf("line %d: %s: %q is not of [A-Za-z0-9._-]{1,64}", n, c.name, c.v)
			}
		}
		if f[3] != "-" {
			k, err := record.DecodePublicKey(f[3])
			if err != nil {
				return nil, fmt.Errorf("line %d: pubkey of %s: %w", n, d.ID, err)
			}
			d.Key = k
		}
		if _, dup := inv.byID[d.ID]; dup {
			return nil, fmt.Errorf("line %d: device %s listed twice", n, d.ID)
		}
		inv.byID[d.ID] = d
		inv.order = append(inv.order, d.ID)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read: %w", err)
	}
	return inv, nil
}

// Device returns the inventory's entry of a device.
func (inv *Inventory) Device(id string) (Device, bool) {
	if inv == nil {
		return Device{}, false
	}
	d, ok := inv.byID[id]
	return d, ok
}

// Devices returns every device, in the order of the file.
func (inv *Inventory) Devices() []Device {
	if inv == nil {
		return nil
	}
	out := make([]Device, len(inv.order))
	for i, id := range inv.order {
		out[i] = inv.byID[id]
	}
	return out
}

// Check verifies what one record shows by itself: its signature under the
// device's trusted key and the counter it names. announced is the key the
// device published in its status, or nil; it can make a record "tofu", never
// verified. inv may be nil: the hall has no keys file, and nothing verifies.
// The chain needs the record's neighbours: see [Auditor] and the store.
func Check(inv *Inventory, p *record.Press, announced ed25519.PublicKey) Verdict {
	d, known := inv.Device(p.Device)
	v := Verdict{State: Verified}
	if known && (p.Hall != d.Hall || p.Counter != d.Counter) {
		v.Flag(WrongCounter)
	}
	switch {
	case !known || d.Key == nil:
		if v.State != Flagged {
			v.State = Unverified
		}
		v.Reasons = append(v.Reasons, NoTrustedKey)
		if announced != nil && p.Sig != "" && p.Verify(announced) == nil {
			v.Reasons = append(v.Reasons, TOFU)
		}
	case p.Sig == "":
		v.Flag(Unsigned)
	case p.Verify(d.Key) != nil:
		v.Flag(BadSignature)
	}
	return v
}
