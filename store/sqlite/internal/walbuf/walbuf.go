// Package walbuf registers a SQLite VFS that is the default one (unix) except that a
// write-ahead log's writes reach the file one commit at a time.
//
// SQLite writes each frame of a commit to the log with two system calls, its 24-byte header
// and then its page, so a commit that dirtied nine pages (a group of inspector captures, a
// publish) costs eighteen pwrite calls of a few microseconds of CPU each. Here the log's file
// gathers consecutive writes in a buffer and writes them with one call when the commit is
// complete, when the buffer is full, and before any other operation on the file (a read, a
// sync, a truncate, its size, closing it). A commit is complete when its commit frame (the
// last, the one whose header carries the database's size) has its page written, or, when
// SQLite rewrites the checksums of frames it wrote over, when that frame's header is written
// again after being read.
//
// Why that is safe: nothing can see a frame before its commit is published in the wal-index,
// which SQLite does after walFrames has written every frame of the commit, and the commit
// frame is the last of them, so its write has flushed the rest by then. Frames written
// without a commit (a transaction spilling its cache) are read back only through this same
// file, whose read flushes first. A crash can lose only frames of a commit that had not
// returned, as it could before. The database file, its journals and every other file go
// straight to the default VFS.
package walbuf

import (
	"encoding/binary"
	"fmt"
	"sync"
	"sync/atomic"
	"unsafe"

	"modernc.org/libc"
	sqlite3 "modernc.org/sqlite/lib"
)

// Name is the VFS's name, for a DSN's vfs parameter.
const Name = "hookrelay-walbuf"

// bufSize bounds what one write carries: a commit larger than this writes in several. The
// default VFS writes at most 0x1ffff bytes a call (unix's seekAndWriteFd masks the count), so
// that is the most one write may carry: with 8 KiB pages, fifteen frames.
const bufSize = 0x1ffff

// frameHeader is the size of a log frame's header (SQLite's WAL_FRAME_HDRSIZE).
const frameHeader = 24

var (
	once      sync.Once
	errOnce   error
	base      uintptr // the default VFS (sqlite3_vfs *)
	stateAt   uintptr // offset of a file's state past the default VFS's file object
	logMethod sqlite3.Tsqlite3_io_methods

	// Counted for tests: frames' writes asked of the log files, and writes made.
	asked, made atomic.Int64
)

// state is a log file's own part of its sqlite3_file, past the default VFS's. It lives in
// memory SQLite allocated, so it holds no Go pointers.
type state struct {
	methods uintptr // the default VFS's methods for the file
	buf     uintptr // bufSize bytes from libc's allocator; 0 until the first write
	n       int64   // bytes gathered
	off     int64   // the file offset of the buffer's first byte
	readOff int64   // the offset of the last read; -1 before the first
	commit  int32   // the last frame header written was a commit frame's
	_       int32
}

// Register registers the VFS once per process; a DSN then names it with vfs=Name.
func Register() error {
	once.Do(func() { errOnce = register() })
	return errOnce
}

func register() error {
	tls := libc.NewTLS()
	defer tls.Close()
	base = sqlite3.Xsqlite3_vfs_find(tls, 0)
	if base == 0 {
		return fmt.Errorf("walbuf: no default SQLite VFS")
	}
	b := (*sqlite3.Tsqlite3_vfs)(at(base))
	stateAt = (uintptr(b.FszOsFile) + 7) &^ 7

	// Version 1: SQLite calls the shared-memory and memory-map methods of later versions on
	// database files only, never on a log.
	logMethod.FiVersion = 1
	*(*func(*libc.TLS, uintptr) int32)(unsafe.Pointer(&logMethod.FxClose)) = xClose
	*(*func(*libc.TLS, uintptr, uintptr, int32, int64) int32)(unsafe.Pointer(&logMethod.FxRead)) = xRead
	*(*func(*libc.TLS, uintptr, uintptr, int32, int64) int32)(unsafe.Pointer(&logMethod.FxWrite)) = xWrite
	*(*func(*libc.TLS, uintptr, int64) int32)(unsafe.Pointer(&logMethod.FxTruncate)) = xTruncate
	*(*func(*libc.TLS, uintptr, int32) int32)(unsafe.Pointer(&logMethod.FxSync)) = xSync
	*(*func(*libc.TLS, uintptr, uintptr) int32)(unsafe.Pointer(&logMethod.FxFileSize)) = xFileSize
	*(*func(*libc.TLS, uintptr, int32) int32)(unsafe.Pointer(&logMethod.FxLock)) = xLock
	*(*func(*libc.TLS, uintptr, int32) int32)(unsafe.Pointer(&logMethod.FxUnlock)) = xUnlock
	*(*func(*libc.TLS, uintptr, uintptr) int32)(unsafe.Pointer(&logMethod.FxCheckReservedLock)) = xCheckReservedLock
	*(*func(*libc.TLS, uintptr, int32, uintptr) int32)(unsafe.Pointer(&logMethod.FxFileControl)) = xFileControl
	*(*func(*libc.TLS, uintptr) int32)(unsafe.Pointer(&logMethod.FxSectorSize)) = xSectorSize
	*(*func(*libc.TLS, uintptr) int32)(unsafe.Pointer(&logMethod.FxDeviceCharacteristics)) = xDeviceCharacteristics

	// The VFS itself is the default one's, copied, with room for the state and its own open.
	// It is never unregistered: connections keep a pointer to it while they are open.
	v := libc.Xmalloc(tls, uint64(unsafe.Sizeof(sqlite3.Tsqlite3_vfs{})))
	name, err := libc.CString(Name)
	if v == 0 || err != nil {
		return fmt.Errorf("walbuf: out of memory")
	}
	vfs := (*sqlite3.Tsqlite3_vfs)(at(v))
	*vfs = *b
	vfs.FpNext = 0
	vfs.FzName = name
	vfs.FszOsFile = int32(stateAt + unsafe.Sizeof(state{}))
	*(*func(*libc.TLS, uintptr, uintptr, uintptr, int32, uintptr) int32)(unsafe.Pointer(&vfs.FxOpen)) = xOpen
	if rc := sqlite3.Xsqlite3_vfs_register(tls, v, 0); rc != sqlite3.SQLITE_OK {
		return fmt.Errorf("walbuf: register the VFS: code %d", rc)
	}
	return nil
}

// Stats returns how many writes SQLite asked of write-ahead logs opened through the VFS and
// how many it made.
func Stats() (writesAsked, writesMade int64) { return asked.Load(), made.Load() }

// xOpen opens the file with the default VFS and, for a write-ahead log, puts this package's
// methods in front of the default ones.
func xOpen(tls *libc.TLS, _ uintptr, zName uintptr, pFile uintptr, flags int32, pOutFlags uintptr) int32 {
	b := (*sqlite3.Tsqlite3_vfs)(at(base))
	rc := (*(*func(*libc.TLS, uintptr, uintptr, uintptr, int32, uintptr) int32)(unsafe.Pointer(&struct{ uintptr }{b.FxOpen})))(tls, base, zName, pFile, flags, pOutFlags)
	f := (*sqlite3.Tsqlite3_file)(at(pFile))
	if rc != sqlite3.SQLITE_OK || flags&sqlite3.SQLITE_OPEN_WAL == 0 || f.FpMethods == 0 {
		return rc
	}
	*stateOf(pFile) = state{methods: f.FpMethods, readOff: -1}
	f.FpMethods = uintptr(unsafe.Pointer(&logMethod))
	return rc
}

func stateOf(pFile uintptr) *state { return (*state)(at(pFile + stateAt)) }

func methodsOf(pFile uintptr) *sqlite3.Tsqlite3_io_methods {
	return (*sqlite3.Tsqlite3_io_methods)(at(stateOf(pFile).methods))
}

// flush writes what the file gathered.
func flush(tls *libc.TLS, pFile uintptr) int32 {
	s := stateOf(pFile)
	if s.n == 0 {
		return sqlite3.SQLITE_OK
	}
	n := s.n
	s.n = 0
	made.Add(1)
	return write(tls, pFile, s.buf, int32(n), s.off)
}

func write(tls *libc.TLS, pFile, p uintptr, n int32, off int64) int32 {
	return (*(*func(*libc.TLS, uintptr, uintptr, int32, int64) int32)(unsafe.Pointer(&struct{ uintptr }{methodsOf(pFile).FxWrite})))(tls, pFile, p, n, off)
}

func xWrite(tls *libc.TLS, pFile uintptr, p uintptr, n int32, off int64) int32 {
	asked.Add(1)
	s := stateOf(pFile)
	src := unsafe.Slice((*byte)(at(p)), n)
	// A commit ends with its commit frame: the frame's header (whose second word, the
	// database's size in pages after the commit, is 0 in every other frame) and then its
	// page. When SQLite rewrites the checksums of frames it wrote over, it reads each frame
	// and writes its header alone, and no page follows the commit frame's.
	var last bool
	if n == frameHeader {
		s.commit = libc.BoolInt32(binary.BigEndian.Uint32(src[4:8]) != 0)
		last = s.commit != 0 && off == s.readOff
	} else {
		last, s.commit = s.commit != 0, 0
	}
	if s.n > 0 && (off != s.off+s.n || s.n+int64(n) > bufSize) {
		if rc := flush(tls, pFile); rc != sqlite3.SQLITE_OK {
			return rc
		}
	}
	if int64(n) > bufSize {
		made.Add(1)
		return write(tls, pFile, p, n, off)
	}
	if s.buf == 0 {
		if s.buf = libc.Xmalloc(tls, bufSize); s.buf == 0 {
			return sqlite3.SQLITE_IOERR_NOMEM
		}
	}
	if s.n == 0 {
		s.off = off
	}
	copy(unsafe.Slice((*byte)(at(s.buf+uintptr(s.n))), n), src)
	s.n += int64(n)
	if last {
		return flush(tls, pFile)
	}
	return sqlite3.SQLITE_OK
}

func xClose(tls *libc.TLS, pFile uintptr) int32 {
	rc := flush(tls, pFile)
	s := stateOf(pFile)
	if s.buf != 0 {
		libc.Xfree(tls, s.buf)
		s.buf = 0
	}
	m := methodsOf(pFile)
	crc := (*(*func(*libc.TLS, uintptr) int32)(unsafe.Pointer(&struct{ uintptr }{m.FxClose})))(tls, pFile)
	if rc != sqlite3.SQLITE_OK {
		return rc
	}
	return crc
}

func xRead(tls *libc.TLS, pFile uintptr, p uintptr, n int32, off int64) int32 {
	if rc := flush(tls, pFile); rc != sqlite3.SQLITE_OK {
		return rc
	}
	stateOf(pFile).readOff = off
	return (*(*func(*libc.TLS, uintptr, uintptr, int32, int64) int32)(unsafe.Pointer(&struct{ uintptr }{methodsOf(pFile).FxRead})))(tls, pFile, p, n, off)
}

func xTruncate(tls *libc.TLS, pFile uintptr, size int64) int32 {
	if rc := flush(tls, pFile); rc != sqlite3.SQLITE_OK {
		return rc
	}
	return (*(*func(*libc.TLS, uintptr, int64) int32)(unsafe.Pointer(&struct{ uintptr }{methodsOf(pFile).FxTruncate})))(tls, pFile, size)
}

func xSync(tls *libc.TLS, pFile uintptr, flags int32) int32 {
	if rc := flush(tls, pFile); rc != sqlite3.SQLITE_OK {
		return rc
	}
	return (*(*func(*libc.TLS, uintptr, int32) int32)(unsafe.Pointer(&struct{ uintptr }{methodsOf(pFile).FxSync})))(tls, pFile, flags)
}

func xFileSize(tls *libc.TLS, pFile uintptr, pSize uintptr) int32 {
	if rc := flush(tls, pFile); rc != sqlite3.SQLITE_OK {
		return rc
	}
	return (*(*func(*libc.TLS, uintptr, uintptr) int32)(unsafe.Pointer(&struct{ uintptr }{methodsOf(pFile).FxFileSize})))(tls, pFile, pSize)
}

func xLock(tls *libc.TLS, pFile uintptr, lock int32) int32 {
	if rc := flush(tls, pFile); rc != sqlite3.SQLITE_OK {
		return rc
	}
	return (*(*func(*libc.TLS, uintptr, int32) int32)(unsafe.Pointer(&struct{ uintptr }{methodsOf(pFile).FxLock})))(tls, pFile, lock)
}

func xUnlock(tls *libc.TLS, pFile uintptr, lock int32) int32 {
	if rc := flush(tls, pFile); rc != sqlite3.SQLITE_OK {
		return rc
	}
	return (*(*func(*libc.TLS, uintptr, int32) int32)(unsafe.Pointer(&struct{ uintptr }{methodsOf(pFile).FxUnlock})))(tls, pFile, lock)
}

func xCheckReservedLock(tls *libc.TLS, pFile uintptr, pResOut uintptr) int32 {
	return (*(*func(*libc.TLS, uintptr, uintptr) int32)(unsafe.Pointer(&struct{ uintptr }{methodsOf(pFile).FxCheckReservedLock})))(tls, pFile, pResOut)
}

func xFileControl(tls *libc.TLS, pFile uintptr, op int32, pArg uintptr) int32 {
	if rc := flush(tls, pFile); rc != sqlite3.SQLITE_OK {
		return rc
	}
	return (*(*func(*libc.TLS, uintptr, int32, uintptr) int32)(unsafe.Pointer(&struct{ uintptr }{methodsOf(pFile).FxFileControl})))(tls, pFile, op, pArg)
}

func xSectorSize(tls *libc.TLS, pFile uintptr) int32 {
	return (*(*func(*libc.TLS, uintptr) int32)(unsafe.Pointer(&struct{ uintptr }{methodsOf(pFile).FxSectorSize})))(tls, pFile)
}

func xDeviceCharacteristics(tls *libc.TLS, pFile uintptr) int32 {
	return (*(*func(*libc.TLS, uintptr) int32)(unsafe.Pointer(&struct{ uintptr }{methodsOf(pFile).FxDeviceCharacteristics})))(tls, pFile)
}

// at turns an address SQLite gave into a pointer (memory of libc's allocator, which Go's
// collector neither moves nor frees).
func at(p uintptr) unsafe.Pointer { return *(*unsafe.Pointer)(unsafe.Pointer(&p)) }
