package e2e

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hallrate/hallrate/internal/mqtttest"
	"github.com/hallrate/hallrate/internal/testenv"
	"github.com/hallrate/hallrate/record"
)

// chaosEnabled gates the fault-injection suite: it needs root (network
// namespaces, mounts) and takes minutes. `make chaos` sets HALLRATE_CHAOS.
func chaosEnabled(t *testing.T) {
	t.Helper()
	if os.Getenv("HALLRATE_CHAOS") == "" {
		t.Skip("fault injection runs with HALLRATE_CHAOS=1 (make chaos)")
	}
	if os.Geteuid() != 0 {
		t.Fatal("fault injection needs root for network namespaces and mounts")
	}
}

// netns is a network namespace with a veth pair to the host: the agent
// lives at 10.213.9.2, the broker listens at 10.213.9.1. These are the
// test's own hosts; no other address is ever used.
type netns struct {
	t          *testing.T
	name       string
	host, peer string
}

const (
	nsHostAddr = "10.213.9.1"
	nsPeerAddr = "10.213.9.2"
)

func newNetns(t *testing.T) *netns {
	t.Helper()
	n := &netns{t: t, name: "hrchaos", host: "hrchaos-h", peer: "hrchaos-a"}
	n.cleanup() // what a crashed earlier run may have left
	n.must("ip", "netns", "add", n.name)
	t.Cleanup(n.cleanup)
	n.must("ip", "link", "add", n.host, "type", "veth", "peer", "name", n.peer)
	n.must("ip", "link", "set", n.peer, "netns", n.name)
	n.must("ip", "addr", "add", nsHostAddr+"/30", "dev", n.host)
	n.must("ip", "link", "set", n.host, "up")
	n.must("ip", "netns", "exec", n.name, "ip", "addr", "add", nsPeerAddr+"/30", "dev", n.peer)
	n.must("ip", "netns", "exec", n.name, "ip", "link", "set", n.peer, "up")
	n.must("ip", "netns", "exec", n.name, "ip", "link", "set", "lo", "up")
	return n
}

func (n *netns) cleanup() {
	_ = exec.Command("ip", "netns", "del", n.name).Run()
	_ = exec.Command("ip", "link", "del", n.host).Run()
}

func (n *netns) must(args ...string) {
	n.t.Helper()
	if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
		n.t.Fatalf("%s: %v: %s", strings.Join(args, " "), err, out)
	}
}

func (n *netns) prefix() []string { return []string{"ip", "netns", "exec", n.name} }

// linkDown takes the host side of the pair down: the agent sees no carrier.
func (n *netns) linkDown() { n.must("ip", "link", "set", n.host, "down") }

func (n *netns) linkUp() { n.must("ip", "link", "set", n.host, "up") }

// shape puts a token bucket on both directions. This kernel has no netem,
// so a black hole is a bucket that passes nothing (packets vanish without
// resets) and a slow link is a narrow one that delays and drops.
func (n *netns) shape(args ...string) {
	n.t.Helper()
	n.must(append([]string{"tc", "qdisc", "replace", "dev", n.host, "root", "tbf"}, args...)...)
	n.must(append(append(n.prefix(), "tc", "qdisc", "replace", "dev", n.peer, "root", "tbf"), args...)...)
}

func (n *netns) blackhole() { n.shape("rate", "8bit", "burst", "100", "limit", "1") }

func (n *netns) slow() { n.shape("rate", "96kbit", "burst", "1600", "latency", "300ms") }

func (n *netns) heal() {
	_ = exec.Command("tc", "qdisc", "del", "dev", n.host, "root").Run()
	_ = exec.Command("ip", "netns", "exec", n.name, "tc", "qdisc", "del", "dev", n.peer, "root").Run()
	n.linkUp()
}

var pressID = regexp.MustCompile(`msg=press .*\bid=(\S+)`)

// ackedIDs returns the ids of the presses an agent reported durable.
func (a *agentProc) ackedIDs() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	var ids []string
	for _, l := range a.lines {
		if m := pressID.FindStringSubmatch(l); m != nil {
			ids = append(ids, m[1])
		}
	}
	return ids
}

// rssKB reads the resident set of a process.
func rssKB(pid int) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "VmRSS:" {
			n, _ := strconv.Atoi(f[1])
			return n
		}
	}
	return 0
}

// TestChaos presses buttons through every fault the delivery promise covers,
// injected at random points, and checks what a persistent subscriber got.
func TestChaos(t *testing.T) {
	chaosEnabled(t)
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("HALLRATE_CHAOS_SEED"); s != "" {
		seed, _ = strconv.ParseUint(s, 10, 64)
	}
	rng := rand.New(rand.NewPCG(seed, 0))
	t.Logf("seed %d (HALLRATE_CHAOS_SEED to repeat)", seed)

	ns := newNetns(t)
	m := mqtttest.StartMosquittoOpts(t, mqtttest.MosquittoOptions{Hosts: []string{nsHostAddr}})
	sub := mqtttest.Subscribe(t, m.URL(), "chaos-subscriber", prefix+"/#")
	dir := t.TempDir()
	conf := writeConfig(t, dir, "w05-a", fmt.Sprintf("tcp://%s:%d", nsHostAddr, m.Port()), "")
	pub := devicePubKey(t, conf)

	var acked []string
	var agent *agentProc
	typedHere := 0 // presses typed to the running incarnation
	start := func() {
		agent = startAgentIn(t, ns.prefix(), conf)
		typedHere = 0
	}
	retire := func() {
		agent.kill()
		acked = append(acked, agent.ackedIDs()...)
	}
	start()

	const rounds, minPresses = 24, 500
	faults := map[string]int{}
	typed, maxRSS := 0, 0
	ticket := 0
	for r := 0; r < rounds || typed < minPresses; r++ {
		if r%3 == 0 {
			ticket++
			mqtttest.Publish(t, m.URL(), topics.ticket, 1, true, ticketJSON(fmt.Sprintf("C%03d", ticket), record.Serving))
		}
		burst := func() {
			n := 5 + rng.IntN(20)
			bs := make([]int, n)
			for i := range bs {
				bs[i] = 1 + rng.IntN(4)
			}
			agent.press(bs...)
			typed += n
			typedHere += n
		}
		burst()
		hold := time.Duration(500+rng.IntN(2500)) * time.Millisecond
		switch f := rng.IntN(6); f {
		case 0:
			faults["agent kill -9"]++
			time.Sleep(time.Duration(rng.IntN(30)) * time.Millisecond) // a random point of its work
			retire()
			start()
		case 1:
			faults["broker kill -9"]++
			m.Kill()
			burst()
			time.Sleep(hold)
			m.Start()
		case 2:
			faults["broker frozen past keepalive"]++
			m.Freeze()
			burst()
			time.Sleep(5 * time.Second) // keepalive is 2s: the agent must notice
			m.Thaw()
		case 3:
			faults["link down"]++
			ns.linkDown()
			burst()
			time.Sleep(hold)
			ns.heal()
		case 4:
			faults["black hole"]++
			ns.blackhole()
			burst()
			time.Sleep(4*time.Second + hold) // longer than keepalive
			ns.heal()
		case 5:
			faults["slow link"]++
			ns.slow()
			burst()
			time.Sleep(hold)
			ns.heal()
		}
		if rss := rssKB(agent.cmd.Process.Pid); rss > maxRSS {
			maxRSS = rss
		}
	}
	// The last incarnation is never killed: every press typed to it must
	// become durable.
	agent.waitDurable(typedHere, time.Minute)
	acked = append(acked, agent.ackedIDs()...)

	want := map[string]bool{}
	for _, id := range acked {
		want[id] = true
	}
	msgs := sub.Wait(t, 2*time.Minute, "every acknowledged press", func(msgs []mqtttest.Message) bool {
		got := map[string]bool{}
		for _, m := range msgs {
			if strings.HasSuffix(m.Topic, "/rating") {
				if p, err := record.DecodePress(m.Payload); err == nil {
					got[p.ID] = true
				}
			}
		}
		for id := range want {
			if !got[id] {
				return false
			}
		}
		return true
	})

	all := presses(t, msgs)
	d := distinct(t, all)
	lastSeq := map[string]uint64{}
	for _, p := range d {
		if err := p.Verify(pub); err != nil {
			t.Fatalf("received %s that the agent did not make: %v", p.ID, err)
		}
		if p.Seq != lastSeq[p.Epoch]+1 {
			t.Fatalf("epoch %s: %s first received after seq %d: out of order or a gap", p.Epoch, p.ID, lastSeq[p.Epoch])
		}
		lastSeq[p.Epoch] = p.Seq
	}
	if len(lastSeq) != 1 {
		t.Fatalf("records of %d epochs; the outbox was never replaced", len(lastSeq))
	}
	if maxRSS > 64*1024 {
		t.Fatalf("agent resident memory reached %d KiB", maxRSS)
	}
	var fs []string
	for k, v := range faults {
		fs = append(fs, fmt.Sprintf("%s=%d", k, v))
	}
	lost := len(want) - countIn(want, d)
	fmt.Printf("chaos: %d presses typed, %d acknowledged, %d received (%d messages), faults: %s; max agent RSS %d KiB; lost %d\n",
		typed, len(want), len(d), len(all), strings.Join(fs, ", "), maxRSS, lost)
	if lost != 0 {
		t.Fatalf("%d acknowledged presses lost", lost)
	}
}

func countIn(want map[string]bool, ps []record.Press) int {
	n := 0
	for _, p := range ps {
		if want[p.ID] {
			n++
		}
	}
	return n
}

// TestDiskFull fills the filesystem under the outbox: a press that cannot be
// written is shown as an error and counted, the agent keeps running, and it
// records again as soon as there is room, with no gap in seq.
func TestDiskFull(t *testing.T) {
	chaosEnabled(t)
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=2m", "hallrate-full", dir).CombinedOutput(); err != nil {
		testenv.Missing(t, "HALLRATE_REQUIRE_TMPFS", fmt.Sprintf("a small tmpfs cannot be mounted here: %v: %s", err, bytes.TrimSpace(out)))
	}
	t.Cleanup(func() { _ = exec.Command("umount", "-l", dir).Run() })
	m := mqtttest.StartMosquitto(t, "")
	sub := mqtttest.Subscribe(t, m.URL(), "diskfull-subscriber", prefix+"/#")
	m.Stop() // saves the subscriber's session; the backlog stays on the full disk
	a := startAgent(t, writeConfig(t, dir, "w05-a", m.URL(), ""))
	a.press(1, 2, 3)
	a.waitDurable(3, wait)

	filler := dir + "/filler"
	// dd stops at "no space left on device"; that is the point.
	_ = exec.Command("dd", "if=/dev/zero", "of="+filler, "bs=64k").Run()
	// Press until one is refused; each press is waited for, recorded or not.
	for i := 1; a.count("press NOT recorded") == 0; i++ {
		if i > 2000 {
			t.Fatal("2000 presses fitted on a full 2 MiB disk")
		}
		a.press(4)
		a.waitOutcomes(3+i, wait)
	}
	a.waitLog(1, wait, "press NOT recorded")
	if a.count("no space left on device") == 0 {
		t.Fatalf("the failure does not say why:\n%s", a.logWithout("msg=press "))
	}
	durableBefore := a.count("msg=press ")

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	a.press(2)
	a.waitDurable(durableBefore+1, wait)
	m.Start()
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("agent log:\n%s", a.logWithout("msg=press "))
		}
	})
	msgs := sub.Wait(t, wait, "every durable press", countDistinct(durableBefore+1))
	assertComplete(t, msgs, durableBefore+1)
	fmt.Printf("disk full: %d presses recorded, %d refused while full, agent kept running, 0 lost\n",
		durableBefore+1, a.count("press NOT recorded"))
}

// TestCorruptOutboxAtStart starts the real agent on an outbox a power cut
// destroyed: it is moved aside, reported, and a new epoch starts at seq 1.
func TestCorruptOutboxAtStart(t *testing.T) {
	c := mqtttest.NewCollector()
	b := mqtttest.StartEmbedded(t, c.Add)
	dir := t.TempDir()
	if err := os.WriteFile(dir+"/outbox.db", []byte(strings.Repeat("\x00garbage", 4096)), 0o600); err != nil {
		t.Fatal(err)
	}
	a := startAgent(t, writeConfig(t, dir, "w05-a", b.URL(), ""))
	a.waitLog(1, wait, "outbox unreadable: moved aside, starting a new epoch")
	a.press(1)
	assertComplete(t, c.Wait(t, wait, "a record of the new epoch", countDistinct(1)), 1)
	matches, _ := filepath.Glob(dir + "/outbox.db.corrupt-*")
	if len(matches) != 1 {
		t.Fatalf("moved-aside file: %v", matches)
	}
}
