package store

import (
	"os"
	"path/filepath"

	"github.com/cockroachdb/errors"
)

// ErrDirGone marks the error CheckDir returns for a data directory that
// was deleted or replaced under the running store.
var ErrDirGone = errors.New("store: data directory gone")

// CheckDir checks that the data directory the store was opened in is still
// there, is the same directory, and still holds Badger's manifest. A store
// whose directory went away cannot make anything durable: Badger retries
// its flushes forever, so the owner must stop instead of waiting on it. An
// in-memory store always passes.
func (s *Store) CheckDir() error {
	if s.dirInfo == nil {
		return nil
	}
	st, err := os.Stat(s.dir)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return s.dirErr(errors.Newf("data directory %s was deleted while the store was open", s.dir))
	case err != nil:
		return errors.Wrapf(err, "check data directory %s", s.dir)
	case !os.SameFile(st, s.dirInfo):
		return s.dirErr(errors.Newf("data directory %s was replaced by another directory while the store was open", s.dir))
	}
	if _, err := os.Stat(filepath.Join(s.dir, "MANIFEST")); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return s.dirErr(errors.Newf("data directory %s lost its files (MANIFEST is missing) while the store was open", s.dir))
		}
		return errors.Wrapf(err, "check data directory %s", s.dir)
	}
	return nil
}

func (s *Store) dirErr(err error) error {
	return errors.Mark(errors.WithHint(err,
		"the agent stops rather than acknowledge writes it cannot make durable; find what removed the directory "+
			"(an unmounted volume, a cleanup job): if its volume was unmounted, mount it again and restart the agent"), ErrDirGone)
}

// Abandon marks the store closed without closing Badger, whose close would
// flush into a directory that is gone and never return. Only for a store
// that failed CheckDir; the process should exit soon after.
func (s *Store) Abandon() {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	s.life.Lock()
	s.closed = true
	s.life.Unlock()
	if s.gcCancel != nil {
		s.gcCancel()
	}
}
