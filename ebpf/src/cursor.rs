//! The one bounds-checked packet cursor. Every header is read through
//! [`Cursor::take`] (or looked at through [`Cursor::peek`]) or skipped
//! through [`Cursor::skip`]; nothing else in the program does pointer
//! arithmetic on packet data.

use core::mem::size_of;

/// A position in `[data, data_end)`. Reads never cross `end`.
#[derive(Clone, Copy)]
pub struct Cursor {
    pos: usize,
    end: usize,
}

/// The frame ended before the header being read.
pub struct Truncated;

impl Cursor {
    #[inline(always)]
    pub fn new(data: usize, end: usize) -> Self {
        Cursor { pos: data, end }
    }

    /// Returns the header `T` at the current position and moves past it.
    /// `T` must be a plain header made of byte arrays (alignment 1).
    #[inline(always)]
    pub fn take<T: Copy>(&mut self) -> Result<&'static T, Truncated> {
        let start = self.pos;
        if start + size_of::<T>() > self.end {
            return Err(Truncated);
        }
        self.pos = start + size_of::<T>();
        // SAFETY: [start, start + size_of::<T>()) lies inside the packet (checked
        // above, in the form the verifier tracks), and T has alignment 1.
        Ok(unsafe { &*(start as *const T) })
    }

    /// Returns the header `T` at the current position without moving past
    /// it (to choose how to read what follows).
    #[inline(always)]
    pub fn peek<T: Copy>(&self) -> Result<&'static T, Truncated> {
        let mut ahead = *self;
        ahead.take()
    }

    /// Moves `n` bytes forward, failing if that leaves the frame.
    #[inline(always)]
    pub fn skip(&mut self, n: usize) -> Result<(), Truncated> {
        let next = self.pos + n;
        if next > self.end {
            return Err(Truncated);
        }
        self.pos = next;
        Ok(())
    }

    /// Bytes left from the current position to the end of the frame.
    #[inline(always)]
    pub fn remaining(&self) -> usize {
        self.end - self.pos
    }
}
