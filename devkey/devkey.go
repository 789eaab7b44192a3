// Package devkey keeps a terminal's ed25519 signing key: made once in the
// state directory, readable only by the agent's own user, and refused when
// anyone else could read it.
package devkey

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// CheckPrivate fails when the file at path can be read by its group or by
// others: a key so exposed can no longer prove who made a record.
func CheckPrivate(path string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return fmt.Errorf("key file %s has mode %04o: it must be readable only by its owner (chmod 600)", path, fi.Mode().Perm())
	}
	return nil
}

// Load reads the PKCS #8 PEM ed25519 key at path, after [CheckPrivate].
func Load(path string) (ed25519.PrivateKey, error) {
	if err := CheckPrivate(path); err != nil {
		return nil, err
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read device key: %w", err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != "PRIVATE KEY" {
		return nil, fmt.Errorf("device key %s: no PEM \"PRIVATE KEY\" block", path)
	}
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("device key %s: %w", path, err)
	}
	ek, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("device key %s: not an ed25519 key", path)
	}
	return ek, nil
}

// LoadOrCreate loads the key at path, or makes a new one there (mode 0600)
// if there is none. created tells which.
func LoadOrCreate(path string) (key ed25519.PrivateKey, created bool, err error) {
	key, err = Load(path)
	if err == nil || !errors.Is(err, fs.ErrNotExist) {
		return key, false, err
	}
	_, key, err = ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, false, fmt.Errorf("make device key: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, false, fmt.Errorf("encode device key: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return nil, false, fmt.Errorf("make device key: %w", err)
	}
	// Written to a temporary file and renamed, so a power cut never
	// leaves half a key behind.
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, false, fmt.Errorf("make device key: %w", err)
	}
	if err := pem.Encode(f, &pem.Block{Type: "PRIVATE KEY", Bytes: der}); err != nil {
		f.Close()
		return nil, false, fmt.Errorf("write device key: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return nil, false, fmt.Errorf("write device key: %w", err)
	}
	if err := f.Close(); err != nil {
		return nil, false, fmt.Errorf("write device key: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return nil, false, fmt.Errorf("write device key: %w", err)
	}
	return key, true, nil
}
