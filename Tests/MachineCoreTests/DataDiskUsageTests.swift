import Foundation
import MachineCore
import Testing

@Suite struct DataDiskUsageTests {
    @Test func aDiskNinetyPercentFullIsNamedWithTheFixes() throws {
        let df = """
            Filesystem           1024-blocks    Used Available Capacity Mounted on
            /dev/vda               4046560   3650000    187000  96% /var/lib/docker
            """
        let usage = try #require(DataDiskUsage.parse(df: df))
        #expect(usage.percent == 96)
        let warning = try #require(usage.warning(machine: "dev"))
        #expect(warning.contains("the data disk of dev is 96% full (3.5 of 3.7 GiB used)"))
        #expect(warning.contains("`docker system prune`"))
        #expect(warning.contains("`machine set dev --disk 8G` and `machine restart dev`"))
        #expect(try #require(DataDiskUsage.parse(df: df)).warning(machine: "default")?.contains("`machine set --disk 8G`") == true)
    }

    @Test func aDiskWithRoomSaysNothingAndGarbageIsNoMeasurement() {
        let roomy = "Filesystem 1024-blocks Used Available Capacity Mounted on\n/dev/vda 20000000 2000000 17000000 11% /var/lib/docker\n"
        #expect(DataDiskUsage.parse(df: roomy)?.warning(machine: "default") == nil)
        #expect(DataDiskUsage.parse(df: "df: /var/lib/docker: No such file or directory\n") == nil)
        #expect(DataDiskUsage.parse(df: "") == nil)
    }
}
