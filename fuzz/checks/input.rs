//! Structured values read from fuzz bytes. Reads past the end give zero or empty values, so
//! every byte string is a valid input and short inputs still reach the code under test.

/// A cursor over fuzz bytes.
pub struct Input<'a> {
    data: &'a [u8],
}

impl<'a> Input<'a> {
    /// Reads from `data`.
    pub fn new(data: &'a [u8]) -> Self {
        Self { data }
    }

    /// The next byte, or 0.
    pub fn byte(&mut self) -> u8 {
        self.bytes(1).first().copied().unwrap_or(0)
    }

    /// The next two bytes as a little-endian number.
    pub fn u16(&mut self) -> u16 {
        let mut raw = [0u8; 2];
        let bytes = self.bytes(2);
        raw[..bytes.len()].copy_from_slice(bytes);
        u16::from_le_bytes(raw)
    }

    /// The next four bytes as a little-endian number.
    pub fn u32(&mut self) -> u32 {
        let mut raw = [0u8; 4];
        let bytes = self.bytes(4);
        raw[..bytes.len()].copy_from_slice(bytes);
        u32::from_le_bytes(raw)
    }

    /// Up to `len` bytes.
    pub fn bytes(&mut self, len: usize) -> &'a [u8] {
        let (taken, rest) = self.data.split_at(len.min(self.data.len()));
        self.data = rest;
        taken
    }

    /// A string of at most 255 bytes (a length byte, then the bytes), invalid UTF-8 replaced.
    pub fn text(&mut self) -> String {
        let len = usize::from(self.byte());
        String::from_utf8_lossy(self.bytes(len)).into_owned()
    }

    /// Everything left.
    pub fn rest(&mut self) -> &'a [u8] {
        self.bytes(self.data.len())
    }
}
