package e2e

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// mosquittoClient returns the path of mosquitto_pub or mosquitto_sub, or
// skips the test (fails it when HALLRATE_REQUIRE_MOSQUITTO is set).
func mosquittoClient(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err == nil {
		return p
	}
	if os.Getenv("HALLRATE_REQUIRE_MOSQUITTO") != "" {
		t.Fatalf("%s is required (HALLRATE_REQUIRE_MOSQUITTO is set) but not installed", name)
	}
	t.Skipf("%s not installed (apt-get install mosquitto-clients)", name)
	return ""
}

// mosquittoPub publishes with Debian's mosquitto_pub, a client nobody
// here wrote: args are its own, after host and port.
func mosquittoPub(t *testing.T, port int, args ...string) {
	t.Helper()
	bin := mosquittoClient(t, "mosquitto_pub")
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, append([]string{"-h", "127.0.0.1", "-p", fmt.Sprint(port), "-V", "mqttv311"}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("mosquitto_pub %v: %v: %s", args, err, out)
	}
}

// mosquittoSub reads count messages of topic with mosquitto_sub (retained
// ones included) and returns their payloads, one a line.
func mosquittoSub(t *testing.T, port int, count int, args ...string) []string {
	t.Helper()
	bin := mosquittoClient(t, "mosquitto_sub")
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, append([]string{"-h", "127.0.0.1", "-p", fmt.Sprint(port), "-C", fmt.Sprint(count)}, args...)...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("mosquitto_sub %v: %v: %s (got %q)", args, err, errb.String(), out.String())
	}
	return strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
}

// startMosquittoSub starts mosquitto_sub in the background; wait returns
// the payloads of the count messages it read.
func startMosquittoSub(t *testing.T, port, count int, args ...string) (wait func() []string) {
	t.Helper()
	bin := mosquittoClient(t, "mosquitto_sub")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	cmd := exec.CommandContext(ctx, bin, append([]string{"-h", "127.0.0.1", "-p", fmt.Sprint(port), "-q", "1", "-C", fmt.Sprint(count)}, args...)...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(cancel)
	return func() []string {
		t.Helper()
		if err := cmd.Wait(); err != nil {
			t.Fatalf("mosquitto_sub %v: %v: %s (got %q)", args, err, errb.String(), out.String())
		}
		return strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	}
}

// python3 returns Debian's python3 when it can import python3-cryptography
// or python3-nacl, or skips the test (fails it when HALLRATE_REQUIRE_PYTHON
// is set).
func python3(t *testing.T) string {
	t.Helper()
	for _, p := range []string{"/usr/bin/python3", "python3"} {
		path, err := exec.LookPath(p)
		if err != nil {
			continue
		}
		if exec.Command(path, "-c", "import cryptography.hazmat.primitives.asymmetric.ed25519").Run() == nil ||
			exec.Command(path, "-c", "import nacl.signing").Run() == nil {
			return path
		}
	}
	if os.Getenv("HALLRATE_REQUIRE_PYTHON") != "" {
		t.Fatal("python3 with python3-cryptography or python3-nacl is required (HALLRATE_REQUIRE_PYTHON is set)")
	}
	t.Skip("python3 with python3-cryptography or python3-nacl not installed")
	return ""
}
