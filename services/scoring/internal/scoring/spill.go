package scoring

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"sync"
	"syscall"

	"github.com/segmentio/kafka-go"
)

// Spill file layout: an 8-byte header holding the replay offset (little endian), then
// records, each [u32 payload length][u32 CRC-32C of the payload][payload]. A payload is
// uvarint-prefixed key and value, a uvarint header count and the uvarint-prefixed key and
// value of each header. The header offset is the first record not yet published; records
// before it were published and are dropped when the file is emptied or compacted.
const (
	spillHeader    = 8
	spillRecHeader = 8
	spillFileName  = "sync-predictions.spill"
	spillLockName  = "sync-predictions.lock"
)

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// errSpillLocked means another process holds the spill directory.
var errSpillLocked = errors.New("spill directory locked by another process")

// spillSlots is how many processes of one model can spill under one directory.
const spillSlots = 16

// openSpillSlot opens the spill of model under dir: the first of dir/<model>, dir/<model>.1,
// ... that no other process holds. Replicas sharing a directory (several processes on one
// host) each take a slot, and a restarted process adopts the slot, and the records, a
// stopped one left behind.
func openSpillSlot(dir, model string, maxBytes int) (*spill, error) {
	for i := range spillSlots {
		name := model
		if i > 0 {
			name = fmt.Sprintf("%s.%d", model, i)
		}
		sp, err := openSpill(filepath.Join(dir, name), maxBytes)
		if errors.Is(err, errSpillLocked) {
			continue
		}
		return sp, err
	}
	return nil, fmt.Errorf("spill dir %q: all %d slots of model %q are held by other processes", dir, spillSlots, model)
}

// errSpillFull means a record did not fit under the spill file's size limit.
var errSpillFull = errors.New("spill file full")

// spill is a bounded on-disk queue of Kafka records that could not be published, replayed in
// order once the broker is back. One process owns a directory (an exclusive flock on its lock
// file). Appends are written to the OS (not fsynced each): a crash of the process loses
// nothing, a crash of the machine may lose the last writes. It is safe for concurrent use.
type spill struct {
	mu       sync.Mutex
	f        *os.File
	lock     *os.File
	path     string
	maxBytes int64
	size     int64 // physical end of the file
	readOff  int64 // physical offset of the first unpublished record
	records  int   // unpublished records
	// base is added to physical offsets to make the logical offsets peek hands out, so an
	// advance computed before a compaction still lands on the right record.
	base int64
}

// openSpill opens (creating when missing) the spill file in dir, bounded to maxBytes. It
// takes an exclusive lock on dir, so two processes never share one spill file. Records left
// by a previous run are kept for replay; a torn record at the end (a crash mid-write) is cut.
func openSpill(dir string, maxBytes int) (*spill, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("spill dir %q: %w", dir, err)
	}
	lock, err := os.OpenFile(filepath.Join(dir, spillLockName), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("spill lock in %q: %w", dir, err)
	}
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		if errors.Is(err, syscall.EWOULDBLOCK) {
			err = errSpillLocked
		}
		return nil, errors.Join(fmt.Errorf("spill dir %q: %w", dir, err), lock.Close())
	}
	path := filepath.Join(dir, spillFileName)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, errors.Join(fmt.Errorf("open spill file: %w", err), lock.Close())
	}
	s := &spill{f: f, lock: lock, path: path, maxBytes: max(int64(maxBytes), spillHeader+spillRecHeader+1)}
	if err := s.load(); err != nil {
		return nil, errors.Join(err, f.Close(), lock.Close())
	}
	return s, nil
}

// load reads the header and checks the records after it, cutting a torn tail.
func (s *spill) load() error {
	st, err := s.f.Stat()
	if err != nil {
		return fmt.Errorf("stat spill file: %w", err)
	}
	if st.Size() < spillHeader {
		if err := s.f.Truncate(0); err != nil {
			return fmt.Errorf("reset spill file: %w", err)
		}
		if err := s.writeHeader(spillHeader); err != nil {
			return err
		}
		s.size, s.readOff = spillHeader, spillHeader
		return nil
	}
	var h [spillHeader]byte
	if _, err := s.f.ReadAt(h[:], 0); err != nil {
		return fmt.Errorf("read spill header: %w", err)
	}
	s.readOff = int64(binary.LittleEndian.Uint64(h[:]))
	if s.readOff < spillHeader || s.readOff > st.Size() {
		return fmt.Errorf("spill file %s: replay offset %d outside the file (%d bytes)", s.path, s.readOff, st.Size())
	}
	s.size = st.Size()
	off := s.readOff
	for off < s.size {
		_, next, err := s.readRecord(off)
		if err != nil {
			break
		}
		off = next
		s.records++
	}
	if off < s.size {
		if err := s.f.Truncate(off); err != nil {
			return fmt.Errorf("cut torn tail of spill file: %w", err)
		}
		s.size = off
	}
	return nil
}

func (s *spill) writeHeader(off int64) error {
	var h [spillHeader]byte
	binary.LittleEndian.PutUint64(h[:], uint64(off))
	if _, err := s.f.WriteAt(h[:], 0); err != nil {
		return fmt.Errorf("write spill header: %w", err)
	}
	return nil
}

// encodeRecord appends m's spill record to b.
func encodeRecord(b []byte, m kafka.Message) []byte {
	start := len(b)
	b = append(b, make([]byte, spillRecHeader)...)
	b = binary.AppendUvarint(b, uint64(len(m.Key)))
	b = append(b, m.Key...)
	b = binary.AppendUvarint(b, uint64(len(m.Value)))
	b = append(b, m.Value...)
	b = binary.AppendUvarint(b, uint64(len(m.Headers)))
	for _, h := range m.Headers {
		b = binary.AppendUvarint(b, uint64(len(h.Key)))
		b = append(b, h.Key...)
		b = binary.AppendUvarint(b, uint64(len(h.Value)))
		b = append(b, h.Value...)
	}
	payload := b[start+spillRecHeader:]
	binary.LittleEndian.PutUint32(b[start:], uint32(len(payload)))
	binary.LittleEndian.PutUint32(b[start+4:], crc32.Checksum(payload, crcTable))
	return b
}

// decodePayload is the inverse of encodeRecord's payload.
func decodePayload(p []byte) (kafka.Message, error) {
	var m kafka.Message
	field := func() ([]byte, error) {
		n, k := binary.Uvarint(p)
		if k <= 0 || uint64(len(p)-k) < n {
			return nil, errors.New("truncated field")
		}
		v := p[k : k+int(n)]
		p = p[k+int(n):]
		return v, nil
	}
	var err error
	if m.Key, err = field(); err != nil {
		return m, err
	}
	if m.Value, err = field(); err != nil {
		return m, err
	}
	n, k := binary.Uvarint(p)
	if k <= 0 || n > uint64(len(p)) {
		return m, errors.New("bad header count")
	}
	p = p[k:]
	for range n {
		var h kafka.Header
		key, err := field()
		if err != nil {
			return m, err
		}
		if h.Value, err = field(); err != nil {
			return m, err
		}
		h.Key = string(key)
		m.Headers = append(m.Headers, h)
	}
	if len(p) != 0 {
		return m, errors.New("trailing bytes")
	}
	return m, nil
}

// readRecord reads the record at physical offset off and returns it with the next offset.
func (s *spill) readRecord(off int64) (kafka.Message, int64, error) {
	var h [spillRecHeader]byte
	if _, err := s.f.ReadAt(h[:], off); err != nil {
		return kafka.Message{}, 0, fmt.Errorf("read spill record at %d: %w", off, err)
	}
	n := int64(binary.LittleEndian.Uint32(h[:4]))
	if off+spillRecHeader+n > s.size {
		return kafka.Message{}, 0, fmt.Errorf("spill record at %d: %w", off, io.ErrUnexpectedEOF)
	}
	p := make([]byte, n)
	if _, err := s.f.ReadAt(p, off+spillRecHeader); err != nil {
		return kafka.Message{}, 0, fmt.Errorf("read spill record at %d: %w", off, err)
	}
	if crc32.Checksum(p, crcTable) != binary.LittleEndian.Uint32(h[4:]) {
		return kafka.Message{}, 0, fmt.Errorf("spill record at %d: checksum mismatch", off)
	}
	m, err := decodePayload(p)
	if err != nil {
		return kafka.Message{}, 0, fmt.Errorf("spill record at %d: %w", off, err)
	}
	return m, off + spillRecHeader + n, nil
}

// append writes msgs in order, as many as fit under the size limit, and returns how many it
// wrote; err is errSpillFull when some did not fit, or the write error.
func (s *spill) append(msgs []kafka.Message) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var buf []byte
	n := 0
	for _, m := range msgs {
		before := len(buf)
		buf = encodeRecord(buf, m)
		if s.size+int64(len(buf)) > s.maxBytes {
			if err := s.compact(); err != nil {
				return 0, err
			}
			if s.size+int64(len(buf)) > s.maxBytes {
				buf = buf[:before]
				break
			}
		}
		n++
	}
	if len(buf) > 0 {
		if _, err := s.f.WriteAt(buf, s.size); err != nil {
			// Cut what may have been written partly: the records are reported as not spilled.
			return 0, errors.Join(fmt.Errorf("write spill file: %w", err), s.f.Truncate(s.size))
		}
		s.size += int64(len(buf))
		s.records += n
	}
	if n < len(msgs) {
		return n, errSpillFull
	}
	return n, nil
}

// compact drops the published records before the replay offset by rewriting the file (a new
// file renamed over the old one, so a crash leaves either). Called with mu held.
func (s *spill) compact() error {
	if s.readOff == spillHeader {
		return nil
	}
	tmp, err := os.CreateTemp(filepath.Dir(s.path), spillFileName+".*")
	if err != nil {
		return fmt.Errorf("compact spill file: %w", err)
	}
	var h [spillHeader]byte
	binary.LittleEndian.PutUint64(h[:], spillHeader)
	_, err = tmp.Write(h[:])
	if err == nil {
		_, err = io.Copy(tmp, io.NewSectionReader(s.f, s.readOff, s.size-s.readOff))
	}
	if err == nil {
		err = os.Rename(tmp.Name(), s.path)
	}
	if err != nil {
		return errors.Join(fmt.Errorf("compact spill file: %w", err), tmp.Close(), os.Remove(tmp.Name()))
	}
	if err := s.f.Close(); err != nil {
		return errors.Join(fmt.Errorf("close old spill file: %w", err), tmp.Close())
	}
	s.f = tmp
	s.base += s.readOff - spillHeader
	s.size -= s.readOff - spillHeader
	s.readOff = spillHeader
	return nil
}

// peek returns up to max unpublished records from the replay offset and the logical offset
// after them (for advance).
func (s *spill) peek(max int) ([]kafka.Message, int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []kafka.Message
	off := s.readOff
	for off < s.size && len(out) < max {
		m, next, err := s.readRecord(off)
		if err != nil {
			return nil, 0, err
		}
		out = append(out, m)
		off = next
	}
	return out, off + s.base, nil
}

// advance marks the n records before logical offset next as published. When nothing is left
// the file is emptied.
func (s *spill) advance(next int64, n int) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	off := next - s.base
	if off < s.readOff || off > s.size {
		return fmt.Errorf("spill advance to %d outside [%d, %d]", off, s.readOff, s.size)
	}
	s.readOff = off
	s.records -= n
	if s.readOff == s.size {
		if err := s.f.Truncate(spillHeader); err != nil {
			return fmt.Errorf("empty spill file: %w", err)
		}
		s.base += s.size - spillHeader
		s.size, s.readOff = spillHeader, spillHeader
	}
	return s.writeHeader(s.readOff)
}

// pending returns the number of unpublished records.
func (s *spill) pending() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.records
}

// bytes returns the size of the spill file.
func (s *spill) bytes() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.size
}

// close syncs and closes the file and releases the directory lock.
func (s *spill) close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return errors.Join(s.f.Sync(), s.f.Close(), s.lock.Close())
}
