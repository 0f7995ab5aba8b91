"""Reading point clouds and moving them to the map CRS; every bad file named in its error."""

from pathlib import Path

import numpy as np
import pytest
from conftest import write_las
from pyproj import CRS, Transformer

from croco_pipeline.errors import CrocoInputError
from croco_pipeline.localisation.pointcloud import QuerySkipped, read_point_cloud, to_crs


def _square(n: int = 200) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(3)
    return rng.uniform(500000, 500064, n), rng.uniform(4000000, 4000064, n), rng.uniform(0, 9, n)


@pytest.mark.parametrize("src", ["EPSG:4326", "EPSG:32616"])
def test_points_move_to_the_map_crs(tmp_path: Path, src: str) -> None:
    x, y, z = _square()
    # the same points expressed in another CRS, written to a file, read back and moved to 26915
    fx, fy = Transformer.from_crs("EPSG:26915", src, always_xy=True).transform(x, y)
    path = tmp_path / "other.laz"
    if src == "EPSG:4326":
        import laspy

        header = laspy.LasHeader(point_format=1, version="1.4")
        header.scales, header.offsets = (
            np.array([1e-8, 1e-8, 1e-3]),
            np.array([fx.min(), fy.min(), 0]),
        )
        header.add_crs(CRS.from_user_input(src))
        las = laspy.LasData(header)
        las.x, las.y, las.z = fx, fy, z
        las.write(str(path))
    else:
        write_las(path, fx, fy, z, crs=src)
    cloud = to_crs(read_point_cloud(path), "EPSG:26915")
    assert cloud.crs.to_epsg() == 26915
    np.testing.assert_allclose(cloud.x, x, atol=0.01)
    np.testing.assert_allclose(cloud.y, y, atol=0.01)
    np.testing.assert_allclose(cloud.z, z, atol=0.001)


def test_bad_clouds_raise_naming_the_file(tmp_path: Path) -> None:
    x, y, z = _square()
    good = tmp_path / "good.laz"
    write_las(good, x, y, z)
    (tmp_path / "empty.laz").write_bytes(b"")
    (tmp_path / "cut.laz").write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    write_las(tmp_path / "nocrs.las", x, y, z, crs=None)
    for name in ("empty.laz", "cut.laz", "nocrs.las", "missing.laz"):
        with pytest.raises(CrocoInputError, match=name):
            read_point_cloud(tmp_path / name)
    assumed = read_point_cloud(tmp_path / "nocrs.las", assume_crs="EPSG:26915")
    assert assumed.crs.to_epsg() == 26915
    with pytest.raises(QuerySkipped, match="good.laz.*max_points"):
        read_point_cloud(good, max_points=10)
    with pytest.raises(CrocoInputError, match="good.laz.*cannot transform"):
        to_crs(read_point_cloud(good), "IAU_2015:49900")  # Mars: no transformation exists
