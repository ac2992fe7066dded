import Foundation

enum FileHandleStream {
    static let standardError = FileHandleWriter(handle: FileHandle.standardError)
}

struct FileHandleWriter: Sendable {
    let handle: FileHandle
    func write(_ string: String) {
        handle.write(Data(string.utf8))
    }
}
