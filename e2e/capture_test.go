package e2e

import (
	"bytes"
	"encoding/binary"
	"net"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// wireStamps timestamps, from the kernel, the moment each record's bytes
// cross the loopback interface towards the broker: the "bytes on the
// socket" point of the press's way. It reads lo with a packet socket
// (root only) and finds each record by its "seq": member in the TCP
// payloads sent to the broker's port.
//
// The kernel stamps each packet as it passes; the socket is read only when
// the benchmark calls drain between presses, so that no reader is woken,
// and competes for a processor, while a press is on its way.
type wireStamps struct {
	fd   int
	port uint16
	buf  []byte
	oob  []byte
	seen map[uint64]time.Time
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
	// Room for what passes between two drains, and more.
	_ = syscall.SetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4<<20)
	tb.Cleanup(func() { syscall.Close(fd) })
	return &wireStamps{fd: fd, port: uint16(brokerPort), buf: make([]byte, 65536), oob: make([]byte, 128),
		seen: map[uint64]time.Time{}}, true
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// drain reads every packet the socket holds, without waiting.
func (w *wireStamps) drain() {
	for {
		n, oobn, _, _, err := syscall.Recvmsg(w.fd, w.buf, w.oob, syscall.MSG_DONTWAIT)
		if err != nil {
			return // EAGAIN: nothing more
		}
		if at, ok := stamp(w.oob[:oobn]); ok {
			w.take(w.buf[:n], at)
		}
	}
}

// take notes the seqs of the records an IP packet carries to the broker.
func (w *wireStamps) take(pkt []byte, at time.Time) {
	if len(pkt) < 20 || pkt[0]>>4 != 4 || pkt[9] != syscall.IPPROTO_TCP {
		return
	}
	tcp := pkt[int(pkt[0]&0x0f)*4:]
	if len(tcp) < 20 || binary.BigEndian.Uint16(tcp[2:4]) != w.port {
		return
	}
	payload := tcp[int(tcp[12]>>4)*4:]
	for {
		i := bytes.Index(payload, []byte(`"seq":`))
		if i < 0 {
			return
		}
		payload = payload[i+6:]
		j := 0
		for j < len(payload) && payload[j] >= '0' && payload[j] <= '9' {
			j++
		}
		if seq, err := strconv.ParseUint(string(payload[:j]), 10, 64); err == nil {
			// lo shows each packet twice, going out and coming in: the
			// first is the moment it left the agent's socket.
			if _, dup := w.seen[seq]; !dup {
				w.seen[seq] = at
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

// at returns when the record seq left for the broker, as far as drained.
func (w *wireStamps) at(seq uint64) (time.Time, bool) {
	t, ok := w.seen[seq]
	return t, ok
}
