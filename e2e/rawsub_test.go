package e2e

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"testing"
	"time"
)

// rawArrivals subscribes to the rating topic with a minimal MQTT 3.1.1
// client on a plain TCP socket (QoS 0, clean session, no keepalive) and
// timestamps each PUBLISH as soon as its bytes are read: a subscriber
// without paho's goroutine hand-offs between the socket and the callback,
// so that the benchmark's last part is Mosquitto's, not the apparatus's.
func rawArrivals(b testing.TB, port int) <-chan arrival {
	b.Helper()
	conn, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), 10*time.Second)
	if err != nil {
		b.Fatalf("raw subscriber: %v", err)
	}
	b.Cleanup(func() { conn.Close() })
	str := func(s string) []byte { return append(binary.BigEndian.AppendUint16(nil, uint16(len(s))), s...) }
	packet := func(kind byte, body []byte) []byte {
		return append(appendVarint([]byte{kind}, len(body)), body...)
	}
	connect := append(str("MQTT"), 4, 0x02, 0, 0) // level 4, clean session, keepalive off
	connect = append(connect, str("bench-raw-subscriber")...)
	subscribe := append([]byte{0, 1}, str(topics.rating)...)
	subscribe = append(subscribe, 0) // QoS 0
	if _, err := conn.Write(append(packet(0x10, connect), packet(0x82, subscribe)...)); err != nil {
		b.Fatalf("raw subscriber: %v", err)
	}
	r := bufio.NewReader(conn)
	for _, want := range []byte{0x20, 0x90} { // CONNACK, SUBACK
		kind, body, err := readPacket(r)
		if err != nil || kind&0xf0 != want || (want == 0x20 && body[1] != 0) || (want == 0x90 && body[len(body)-1] == 0x80) {
			b.Fatalf("raw subscriber: packet %#x %v: %v", kind, body, err)
		}
	}
	ch := make(chan arrival, 1024)
	go func() {
		for {
			kind, body, err := readPacket(r)
			at := time.Now()
			if err != nil {
				return
			}
			if kind&0xf0 != 0x30 || len(body) < 2 {
				continue
			}
			n := int(binary.BigEndian.Uint16(body))
			if 2+n > len(body) {
				continue
			}
			var rec struct{ Seq uint64 }
			if json.Unmarshal(body[2+n:], &rec) == nil {
				ch <- arrival{rec.Seq, at}
			}
		}
	}()
	return ch
}

func appendVarint(b []byte, n int) []byte {
	for {
		c := byte(n % 128)
		n /= 128
		if n > 0 {
			c |= 0x80
		}
		b = append(b, c)
		if n == 0 {
			return b
		}
	}
}

// readPacket reads one MQTT packet: its first byte and its body.
func readPacket(r *bufio.Reader) (byte, []byte, error) {
	kind, err := r.ReadByte()
	if err != nil {
		return 0, nil, err
	}
	n, mul := 0, 1
	for i := 0; ; i++ {
		c, err := r.ReadByte()
		if err != nil {
			return 0, nil, err
		}
		n += int(c&0x7f) * mul
		if c&0x80 == 0 {
			break
		}
		if mul *= 128; i == 3 {
			return 0, nil, errors.New("remaining length over 4 bytes")
		}
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(r, body); err != nil {
		return 0, nil, err
	}
	return kind, body, nil
}
