//! The mount guard of the real-mount tests: a mount on its own temp dir, unmounted on drop.

use std::path::Path;

use dgenfs::mount::{mount, MountHandle, MountOptions};
use dgenfs::spec::ContentSpec;
use tempfile::TempDir;

/// A live mount on a temp dir; fields drop in order, so the mount goes before the dir.
pub struct TestMount {
    /// The mount; dropping it unmounts.
    pub handle: MountHandle,
    _dir: TempDir,
}

impl TestMount {
    /// Mounts `content` on a fresh temp dir, with the options `configure` sets.
    pub fn new(content: ContentSpec, configure: impl FnOnce(&mut MountOptions)) -> TestMount {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut opts = MountOptions::new(dir.path(), content);
        configure(&mut opts);
        let handle = mount(&opts).expect("mount");
        TestMount { handle, _dir: dir }
    }

    /// Where the tree is mounted.
    pub fn path(&self) -> &Path {
        self.handle.path()
    }
}

/// True when `/dev/fuse` exists; otherwise prints why the calling test skips.
pub fn fuse_available() -> bool {
    let present = Path::new("/dev/fuse").exists();
    if !present {
        eprintln!("skipping: /dev/fuse is absent on this machine");
    }
    present
}
