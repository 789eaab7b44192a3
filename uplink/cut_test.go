package uplink

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hallrate/hallrate/buffer"
	"github.com/hallrate/hallrate/internal/mqtttest"
)

// TestNoResendAfterPUBACKUnderCuts drains 1,000 records through a proxy
// that cuts the connection after every 37th PUBACK it has handed to the
// agent, right after that PUBACK and so with others in flight. Every
// PUBACK the agent received must remove its record: a record published
// again after its PUBACK arrived is a resend, and there must be none.
func TestNoResendAfterPUBACKUnderCuts(t *testing.T) {
	m := mqtttest.StartMosquitto(t, "")
	p := newCutProxy(t, m.Addr(), 37)
	o, err := buffer.NewMemory()
	if err != nil {
		t.Fatal(err)
	}
	for range 1000 {
		if _, err := o.Append(func(s buffer.Slot) ([]byte, []byte, error) { return []byte(strconv.FormatUint(s.Seq, 10)), nil, nil }, nil); err != nil {
			t.Fatal(err)
		}
	}
	cfg := testConfig("tcp://" + p.addr())
	cfg.MinBackoff, cfg.MaxBackoff = 5*time.Millisecond, 20*time.Millisecond
	// A publish that races the loss waits for paho's stopped writer for
	// this long; the default 10s would only slow the test down.
	cfg.WriteTimeout = time.Second
	u := New(cfg, o)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = u.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	waitEmpty(t, o, 2*time.Minute)

	cuts, acked, resent, sent := p.figures()
	t.Logf("cuts %d, PUBACKs handed to the agent %d, records published %d times in all, resends after a PUBACK %d", cuts, acked, sent, len(resent))
	if cuts < 10 {
		t.Fatalf("only %d cuts: the test did not test", cuts)
	}
	if acked < 1000 {
		t.Fatalf("%d PUBACKs handed over for 1,000 records", acked)
	}
	if len(resent) > 0 {
		t.Fatalf("%d records published again after their PUBACK reached the agent: %v", len(resent), resent)
	}
}

// cutProxy forwards MQTT between one client at a time and a broker,
// reading both ways packet by packet.
type cutProxy struct {
	t      *testing.T
	ln     net.Listener
	broker string
	every  int

	mu     sync.Mutex
	acked  map[uint64]bool // records whose PUBACK was written to the client
	resent []uint64
	sent   int
	nAcks  int
	cuts   int
	conns  map[net.Conn]bool
}

func newCutProxy(t *testing.T, broker string, every int) *cutProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &cutProxy{t: t, ln: ln, broker: broker, every: every, acked: map[uint64]bool{}, conns: map[net.Conn]bool{}}
	var wg sync.WaitGroup
	t.Cleanup(func() {
		ln.Close()
		p.mu.Lock()
		for c := range p.conns {
			c.Close()
		}
		p.mu.Unlock()
		wg.Wait()
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() { defer wg.Done(); p.serve(c.(*net.TCPConn)) }()
		}
	}()
	return p
}

func (p *cutProxy) addr() string { return p.ln.Addr().String() }

func (p *cutProxy) figures() (cuts, acked int, resent []uint64, sent int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cuts, p.nAcks, append([]uint64(nil), p.resent...), p.sent
}

// serve runs one connection. The cut is a half close towards the client
// after a whole PUBACK, so that what was written reaches it, then the
// broker side is closed and the client's remaining bytes are read away
// until it hangs up.
func (p *cutProxy) serve(client *net.TCPConn) {
	defer client.Close()
	broker, err := net.Dial("tcp", p.broker)
	if err != nil {
		return
	}
	defer broker.Close()
	p.mu.Lock()
	p.conns[client], p.conns[broker] = true, true
	p.mu.Unlock()
	defer func() {
		p.mu.Lock()
		delete(p.conns, client)
		delete(p.conns, broker)
		p.mu.Unlock()
	}()
	var cmu sync.Mutex
	pids := map[uint16]uint64{} // packet id -> seq, of this connection
	fromClient := make(chan struct{})
	go func() {
		defer close(fromClient)
		r := bufio.NewReader(client)
		for {
			pkt, err := readPacket(r)
			if err != nil {
				return
			}
			if pkt[0]>>4 == 3 { // PUBLISH
				if topic, pid, payload, ok := parsePublish(pkt); ok && strings.HasSuffix(topic, "/rating") {
					seq, _ := strconv.ParseUint(string(payload), 10, 64)
					p.mu.Lock()
					p.sent++
					if p.acked[seq] {
						p.resent = append(p.resent, seq)
					}
					p.mu.Unlock()
					cmu.Lock()
					pids[pid] = seq
					cmu.Unlock()
				}
			}
			if _, err := broker.Write(pkt); err != nil {
				io.Copy(io.Discard, r) // until the client hangs up
				return
			}
		}
	}()
	// PUBACKs go to the client in bursts of what the broker has sent so
	// far, the cut right behind the burst: many tokens complete together
	// just before the loss.
	r := bufio.NewReader(broker)
	var burst []byte
	var burstSeqs []uint64
	for {
		pkt, err := readPacket(r)
		if err != nil {
			break
		}
		burst = append(burst, pkt...)
		if pkt[0]>>4 == 4 && len(pkt) >= 4 { // PUBACK
			cmu.Lock()
			if seq, ok := pids[binary.BigEndian.Uint16(pkt[2:])]; ok {
				burstSeqs = append(burstSeqs, seq)
			}
			cmu.Unlock()
		}
		if r.Buffered() > 0 && len(burstSeqs) < p.every {
			continue
		}
		if _, err := client.Write(burst); err != nil {
			break
		}
		burst = burst[:0]
		p.mu.Lock()
		cut := false
		for _, seq := range burstSeqs {
			p.acked[seq] = true
			p.nAcks++
			if p.nAcks%p.every == 0 {
				cut = true
			}
		}
		burstSeqs = burstSeqs[:0]
		if cut {
			p.cuts++
		}
		p.mu.Unlock()
		if cut {
			break
		}
	}
	client.CloseWrite()
	broker.Close()
	select {
	case <-fromClient:
	case <-time.After(30 * time.Second):
		p.t.Errorf("client did not hang up within 30s of a cut")
	}
}

// readPacket reads one MQTT control packet, fixed header included.
func readPacket(r *bufio.Reader) ([]byte, error) {
	h, err := r.ReadByte()
	if err != nil {
		return nil, err
	}
	pkt := []byte{h}
	n, mult := 0, 1
	for i := 0; ; i++ {
		b, err := r.ReadByte()
		if err != nil {
			return nil, err
		}
		pkt = append(pkt, b)
		n += int(b&0x7f) * mult
		mult *= 128
		if b&0x80 == 0 {
			break
		}
		if i == 3 {
			return nil, errors.New("bad remaining length")
		}
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(r, body); err != nil {
		return nil, err
	}
	return append(pkt, body...), nil
}

// parsePublish splits a QoS 1 PUBLISH into topic, packet id and payload.
func parsePublish(pkt []byte) (topic string, pid uint16, payload []byte, ok bool) {
	i := 1
	for pkt[i]&0x80 != 0 {
		i++
	}
	body := pkt[i+1:]
	if len(body) < 2 {
		return "", 0, nil, false
	}
	tl := int(binary.BigEndian.Uint16(body))
	if (pkt[0]>>1)&3 != 1 || len(body) < 2+tl+2 {
		return "", 0, nil, false
	}
	topic = string(body[2 : 2+tl])
	pid = binary.BigEndian.Uint16(body[2+tl:])
	return topic, pid, body[2+tl+2:], true
}
