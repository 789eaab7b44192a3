package record

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"strconv"
	"strings"
)

// CanonicalTag starts every canonical string, naming its version.
const CanonicalTag = "hallrate-record-v1"

// Canonical returns the string a record's signature and its successor's
// prev hash are computed over: the fields that decide what a rating means,
// one a line, in a fixed order, with pressed_at exactly as in the payload.
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

// ChainHash is the value the next record of the epoch carries as prev:
// hex SHA-256 of this record's canonical string.
func (p *Press) ChainHash() string {
	sum := sha256.Sum256([]byte(p.Canonical()))
	return hex.EncodeToString(sum[:])
}

// Sign sets p.Sig to the base64 ed25519 signature of the canonical string.
func (p *Press) Sign(key ed25519.PrivateKey) {
	p.Sig = base64.StdEncoding.EncodeToString(ed25519.Sign(key, []byte(p.Canonical())))
}

// ErrBadSignature is returned by [Press.Verify] for a record whose
// signature does not match its fields under the given key.
var ErrBadSignature = errors.New("record: signature does not verify")

// Verify checks p.Sig against pub.
func (p *Press) Verify(pub ed25519.PublicKey) error {
	if len(pub) != ed25519.PublicKeySize {
		return errors.New("record: public key has the wrong size")
	}
	sig, err := base64.StdEncoding.DecodeString(p.Sig)
	if err != nil || len(sig) != ed25519.SignatureSize {
		return errors.New("record: sig: not a base64 ed25519 signature")
	}
	if !ed25519.Verify(pub, []byte(p.Canonical()), sig) {
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
