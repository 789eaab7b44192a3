package e2e

import (
	"bytes"
	"encoding/binary"
	"net"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"
)

// wireStamps timestamps, from the kernel, the moment each record's bytes
// cross the loopback interface towards the broker: the "bytes on the
// socket" point of the press's way. It reads lo with a packet socket
// (root only) and finds each record by its "seq": member in the TCP
// payloads sent to the broker's port.
type wireStamps struct {
	fd   int
	mu   sync.Mutex
	seen map[uint64]time.Time
	done chan struct{}
}

// captureLoopback starts the capture; ok is false where a packet socket
// cannot be opened (not root).
func captureLoopback(tb testing.TB, brokerPort int) (*wireStamps, bool) {
	tb.Helper()
	lo, err := net.InterfaceByName("lo")
	if err != nil {
		return nil, false
	}
	const ethPIP = 0x0800
	proto := int(htons(ethPIP))
	fd, err := syscall.Socket(syscall.AF_PACKET, syscall.SOCK_DGRAM, proto)
	if err != nil {
		return nil, false
	}
	if err := syscall.Bind(fd, &syscall.SockaddrLinklayer{Protocol: htons(ethPIP), Ifindex: lo.Index}); err != nil {
		syscall.Close(fd)
		return nil, false
	}
	if err := syscall.SetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_TIMESTAMPNS, 1); err != nil {
		syscall.Close(fd)
		return nil, false
	}
	tv := syscall.NsecToTimeval(int64(100 * time.Millisecond))
	if err := syscall.SetsockoptTimeval(fd, syscall.SOL_SOCKET, syscall.SO_RCVTIMEO, &tv); err != nil {
		syscall.Close(fd)
		return nil, false
	}
	w := &wireStamps{fd: fd, seen: map[uint64]time.Time{}, done: make(chan struct{})}
	stop := make(chan struct{})
	go w.read(uint16(brokerPort), stop)
	tb.Cleanup(func() {
		close(stop)
		<-w.done
		syscall.Close(fd)
	})
	return w, true
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

func (w *wireStamps) read(port uint16, stop <-chan struct{}) {
	defer close(w.done)
	buf := make([]byte, 65536)
	oob := make([]byte, 128)
	for {
		select {
		case <-stop:
			return
		default:
		}
		n, oobn, _, _, err := syscall.Recvmsg(w.fd, buf, oob, 0)
		if err != nil {
			continue // the receive timeout: look at stop again
		}
		at, ok := stamp(oob[:oobn])
		if !ok {
			continue
		}
		pkt := buf[:n]
		if len(pkt) < 20 || pkt[0]>>4 != 4 || pkt[9] != syscall.IPPROTO_TCP {
			continue
		}
		tcp := pkt[int(pkt[0]&0x0f)*4:]
		if len(tcp) < 20 || binary.BigEndian.Uint16(tcp[2:4]) != port {
			continue
		}
		payload := tcp[int(tcp[12]>>4)*4:]
		for {
			i := bytes.Index(payload, []byte(`"seq":`))
			if i < 0 {
				break
			}
			payload = payload[i+6:]
			j := 0
			for j < len(payload) && payload[j] >= '0' && payload[j] <= '9' {
				j++
			}
			if seq, err := strconv.ParseUint(string(payload[:j]), 10, 64); err == nil {
				w.mu.Lock()
				// lo shows each packet twice, going out and coming in:
				// the first is the moment it left the agent's socket.
				if _, dup := w.seen[seq]; !dup {
					w.seen[seq] = at
				}
				w.mu.Unlock()
			}
		}
	}
}

// stamp reads the kernel's receive timestamp (SCM_TIMESTAMPNS).
func stamp(oob []byte) (time.Time, bool) {
	msgs, err := syscall.ParseSocketControlMessage(oob)
	if err != nil {
		return time.Time{}, false
	}
	for _, m := range msgs {
		if m.Header.Level == syscall.SOL_SOCKET && m.Header.Type == syscall.SCM_TIMESTAMPNS && len(m.Data) >= 16 {
			sec := int64(binary.NativeEndian.Uint64(m.Data[0:8]))
			nsec := int64(binary.NativeEndian.Uint64(m.Data[8:16]))
			return time.Unix(sec, nsec), true
		}
	}
	return time.Time{}, false
}

// at returns when the record seq left for the broker.
func (w *wireStamps) at(seq uint64) (time.Time, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	t, ok := w.seen[seq]
	return t, ok
}
