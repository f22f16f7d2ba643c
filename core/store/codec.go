package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
)

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// errChecksum marks a record whose checksum does not match.
var errChecksum = errors.New("record checksum mismatch")

func u64(v uint64) []byte {
	b := make([]byte, 8)
	binary.BigEndian.PutUint64(b, v)
	return b
}

func i64key(v int64) []byte { return u64(uint64(v)) }

func pairKey(a, b int64) []byte {
	k := make([]byte, 16)
	binary.BigEndian.PutUint64(k, uint64(a))
	binary.BigEndian.PutUint64(k[8:], uint64(b))
	return k
}

// sealed appends a CRC-32C so damaged critical records are reported, not used.
func sealed(payload []byte) []byte {
	out := make([]byte, len(payload), len(payload)+4)
	copy(out, payload)
	return binary.BigEndian.AppendUint32(out, crc32.Checksum(payload, crcTable))
}

// unseal checks and strips the checksum. The result aliases v.
func unseal(v []byte) ([]byte, error) {
	if len(v) < 4 {
		return nil, fmt.Errorf("%w: record of %d bytes", errChecksum, len(v))
	}
	payload, sum := v[:len(v)-4], binary.BigEndian.Uint32(v[len(v)-4:])
	if crc32.Checksum(payload, crcTable) != sum {
		return nil, errChecksum
	}
	return payload, nil
}

// encoder builds length-prefixed records.
type encoder struct{ b []byte }

func (e *encoder) u64(v uint64) { e.b = binary.BigEndian.AppendUint64(e.b, v) }
func (e *encoder) bytes(v []byte) {
	e.b = binary.AppendUvarint(e.b, uint64(len(v)))
	e.b = append(e.b, v...)
}
func (e *encoder) str(v string) {
	e.b = binary.AppendUvarint(e.b, uint64(len(v)))
	e.b = append(e.b, v...)
}
func (e *encoder) bool(v bool) {
	if v {
		e.b = append(e.b, 1)
	} else {
		e.b = append(e.b, 0)
	}
}

type decoder struct {
	b   []byte
	err error
}

func (d *decoder) fail(what string) {
	if d.err == nil {
		d.err = fmt.Errorf("truncated record reading %s", what)
	}
}

func (d *decoder) u64() uint64 {
	if len(d.b) < 8 {
		d.fail("integer")
		return 0
	}
	v := binary.BigEndian.Uint64(d.b)
	d.b = d.b[8:]
	return v
}

func (d *decoder) bytes() []byte {
	n, k := binary.Uvarint(d.b)
	if k <= 0 || uint64(len(d.b)-k) < n {
		d.fail("bytes")
		return nil
	}
	v := make([]byte, n)
	copy(v, d.b[k:k+int(n)])
	d.b = d.b[k+int(n):]
	return v
}

func (d *decoder) str() string { return string(d.bytes()) }

func (d *decoder) bool() bool {
	if len(d.b) < 1 {
		d.fail("bool")
		return false
	}
	v := d.b[0] != 0
	d.b = d.b[1:]
	return v
}

func beU64(b []byte) uint64 { return binary.BigEndian.Uint64(b) }
