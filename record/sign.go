package record

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// CanonicalTag starts every version 1 canonical string, naming its version.
const CanonicalTag = "hallrate-record-v1"

// Canonical returns the version 1 canonical string: the fields that decide
// what a rating means, one a line, in a fixed order, with pressed_at exactly
// as in the payload. Records without sigv were signed over it; it leaves
// out staff, item, projectNo and the rest, which is why version 2 exists
// (see [Press.SignedMessage]).
func (p *Press) Canonical() string {
	ticket := ""
	if p.Ticket != nil {
		ticket = p.Ticket.ID
	}
	return strings.Join([]string{
		CanonicalTag, p.ID, p.Device, p.Hall, p.Counter, p.Epoch,
		strconv.FormatUint(p.Seq, 10), strconv.Itoa(p.Button), strconv.Itoa(p.Satisfaction),
		string(p.Disposition), ticket, p.PressedAt, p.Prev,
	}, "\n")
}

// SignedMessage returns the bytes p's signature covers and its successor's
// prev hashes, by the version p.SigV names:
//
//   - version 1 (no sigv): [Press.Canonical];
//   - version 2: "hallrate-record-v2", a line feed, and the record as a
//     JSON object in [CanonicalJSON] form without its "sig" member. Every
//     other member is covered, including those this build does not know:
//     a record decoded by [DecodePress] keeps them from its payload.
func (p *Press) SignedMessage() ([]byte, error) {
	switch p.SigV {
	case 0:
		return []byte(p.Canonical()), nil
	case SigV2:
		obj, err := p.object()
		if err != nil {
			return nil, err
		}
		c, err := CanonicalJSON(obj, "sig")
		if err != nil {
			return nil, err
		}
		return append([]byte(CanonicalTagV2+"\n"), c...), nil
	}
	return nil, fmt.Errorf("record: sigv: unsupported version %d", p.SigV)
}

// object is p as a JSON object: the payload it was decoded from, so that
// members this build does not know stay covered, unless its fields were
// changed since; then its fields alone.
func (p *Press) object() ([]byte, error) {
	b, err := json.Marshal(p)
	if err != nil {
		return nil, fmt.Errorf("record: %w", err)
	}
	if p.raw != nil && bytes.Equal(b, p.decoded) {
		return p.raw, nil
	}
	return b, nil
}

// ChainHash is the value the next record of the epoch carries as prev: hex
// SHA-256 of this record's [Press.SignedMessage], under its own version.
// It is "" for a record that has no signed message (an unsupported sigv).
func (p *Press) ChainHash() string {
	m, err := p.SignedMessage()
	if err != nil {
		return ""
	}
	return chainHashOf(m)
}

// chainHashOf is the chain hash of a signed message.
func chainHashOf(m []byte) string {
	sum := sha256.Sum256(m)
	return hex.EncodeToString(sum[:])
}

// Sign makes p a version 2 record and sets p.Sig to the base64 ed25519
// signature of its signed message.
func (p *Press) Sign(key ed25519.PrivateKey) error {
	p.SigV = SigV2
	_, err := p.sign(key)
	return err
}

// SignChain signs p as [Press.Sign] does and returns its [Press.ChainHash],
// both from one rendering of its signed message (the press's way to the
// outbox renders it once instead of twice).
func (p *Press) SignChain(key ed25519.PrivateKey) (string, error) {
	p.SigV = SigV2
	m, err := p.sign(key)
	if err != nil {
		return "", err
	}
	return chainHashOf(m), nil
}

// SignV1 signs p over the version 1 canonical string, as agents before
// version 2 did; for tests of old records.
func (p *Press) SignV1(key ed25519.PrivateKey) error {
	p.SigV = 0
	_, err := p.sign(key)
	return err
}

// sign sets p.Sig and returns the message it signed.
func (p *Press) sign(key ed25519.PrivateKey) ([]byte, error) {
	p.Sig = ""
	// A payload decoded before is not what will be published now.
	p.raw, p.decoded = nil, nil
	m, err := p.SignedMessage()
	if err != nil {
		return nil, fmt.Errorf("record: sign %s: %w", p.ID, err)
	}
	p.Sig = base64.StdEncoding.EncodeToString(ed25519.Sign(key, m))
	return m, nil
}

// ErrBadSignature is returned by [Press.Verify] for a record whose
// signature does not match its fields under the given key.
var ErrBadSignature = errors.New("record: signature does not verify")

// Verify checks p.Sig against pub, under the version p.SigV names.
func (p *Press) Verify(pub ed25519.PublicKey) error {
	if len(pub) != ed25519.PublicKeySize {
		return errors.New("record: public key has the wrong size")
	}
	sig, err := base64.StdEncoding.DecodeString(p.Sig)
	if err != nil || len(sig) != ed25519.SignatureSize {
		return errors.New("record: sig: not a base64 ed25519 signature")
	}
	m, err := p.SignedMessage()
	if err != nil {
		return err
	}
	if !ed25519.Verify(pub, m, sig) {
		return ErrBadSignature
	}
	return nil
}

// EncodePublicKey renders a public key as the status message carries it:
// base64 of the 32 raw bytes.
func EncodePublicKey(pub ed25519.PublicKey) string {
	return base64.StdEncoding.EncodeToString(pub)
}

// DecodePublicKey parses the form [EncodePublicKey] writes.
func DecodePublicKey(s string) (ed25519.PublicKey, error) {
	b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(s))
	if err != nil || len(b) != ed25519.PublicKeySize {
		return nil, errors.New("record: not a base64 ed25519 public key")
	}
	return ed25519.PublicKey(b), nil
}
