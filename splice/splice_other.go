//go:build !linux

package splice

// Copy is not available here: it returns ErrUnsupported at once.
func (ps *Pipes) Copy(dst, src Side, n int64) (int64, error) { return 0, ErrUnsupported }

// Supported says Copy can work here.
const Supported = false
