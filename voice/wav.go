package voice

import (
	"bytes"
	"encoding/binary"
	"io"
)

func bytesReader(b []byte) io.Reader { return bytes.NewReader(b) }

// Scale returns a copy of a WAV file with its samples scaled to volume
// percent (0..100). Only 16-bit PCM is scaled; any other file, or one it
// cannot parse, is returned as it is.
func Scale(wav []byte, volume int) []byte {
	if volume >= 100 || len(wav) < 12 || string(wav[0:4]) != "RIFF" || string(wav[8:12]) != "WAVE" {
		return wav
	}
	volume = max(volume, 0)
	pcm16 := false
	for off := 12; off+8 <= len(wav); {
		id := string(wav[off : off+4])
		size := int(binary.LittleEndian.Uint32(wav[off+4 : off+8]))
		body := off + 8
		if size < 0 || body+size > len(wav) {
			size = len(wav) - body // a truncated last chunk: take what is there
		}
		switch id {
		case "fmt ":
			if size < 16 {
				return wav
			}
			format := binary.LittleEndian.Uint16(wav[body : body+2])
			bits := binary.LittleEndian.Uint16(wav[body+14 : body+16])
			pcm16 = format == 1 && bits == 16
		case "data":
			if !pcm16 {
				return wav
			}
			out := bytes.Clone(wav)
			for i := body; i+1 < body+size; i += 2 {
				s := int32(int16(binary.LittleEndian.Uint16(out[i:])))
				binary.LittleEndian.PutUint16(out[i:], uint16(int16(s*int32(volume)/100)))
			}
			return out
		}
		off = body + size + size%2 // chunks are padded to an even size
	}
	return wav
}
