package record

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"os"
	"regexp"
	"strings"
	"testing"
)

// docBlocks returns the fenced blocks of docs/contract.md that follow a
// <!-- check:NAME --> marker, by name.
func docBlocks(t *testing.T) map[string]string {
	t.Helper()
	b, err := os.ReadFile("../docs/contract.md")
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	re := regexp.MustCompile("(?s)<!-- check:([a-z0-9-]+) -->\\s*```[a-z]*\\n(.*?)```")
	for _, m := range re.FindAllStringSubmatch(string(b), -1) {
		out[m[1]] = m[2]
	}
	return out
}

// TestContractWorkedExample checks the signature example of the contract:
// the record decodes, its signed message is the bytes shown, their SHA-256
// is the hash shown, and the signature shown verifies under the test key.
func TestContractWorkedExample(t *testing.T) {
	b := docBlocks(t)
	seed, err := hex.DecodeString(strings.TrimSpace(b["sig-seed"]))
	if err != nil || len(seed) != ed25519.SeedSize {
		t.Fatalf("seed: %v", err)
	}
	key := ed25519.NewKeyFromSeed(seed)
	pub, err := DecodePublicKey(b["sig-pubkey"])
	if err != nil || !pub.Equal(key.Public()) {
		t.Fatalf("pubkey is not the seed's: %v", err)
	}
	p, err := DecodePress([]byte(b["sig-record"]))
	if err != nil {
		t.Fatal(err)
	}
	msg, err := p.SignedMessage()
	if err != nil {
		t.Fatal(err)
	}
	want, err := hex.DecodeString(strings.Join(strings.Fields(b["sig-message-hex"]), ""))
	if err != nil || string(msg) != string(want) {
		t.Fatalf("signed message:\n got %x\nwant %x (%v)", msg, want, err)
	}
	sum := sha256.Sum256(msg)
	if hex.EncodeToString(sum[:]) != strings.TrimSpace(b["sig-sha256"]) || p.ChainHash() != hex.EncodeToString(sum[:]) {
		t.Fatalf("sha-256 %x, doc %s", sum, b["sig-sha256"])
	}
	sig := strings.TrimSpace(b["sig-signature"])
	if p.Sig != sig {
		t.Fatalf("the record's sig is not the signature shown")
	}
	if err := p.Verify(pub); err != nil {
		t.Fatalf("example does not verify: %v", err)
	}
	raw, _ := base64.StdEncoding.DecodeString(sig)
	if !ed25519.Verify(pub, want, raw) {
		t.Fatal("the signature shown does not verify over the bytes shown")
	}
	// The example's unknown member is covered: changed, it fails.
	q, _ := DecodePress([]byte(strings.Replace(b["sig-record"], `"source":"queue"`, `"source":"staff"`, 1)))
	if q.Verify(pub) == nil {
		t.Fatal("ticket.source changed: still verifies")
	}
}
