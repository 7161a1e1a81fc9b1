"""Synthetic Sentinel-2 products: ESA's layout and metadata, checked by GDAL's SENTINEL2 driver reading them."""

import hashlib
import xml.etree.ElementTree as ET
import zipfile
from pathlib import Path

import numpy as np
import pytest
import rasterio
from fakes.sentinel2 import (
    ESA_BANDS,
    NATIVE_RESOLUTION,
    iter_sample_product_bands,
    native_bands,
    product_name,
    sample_product_bands,
    write_product,
)

from eurosat_finetune.data.bands import EUROSAT_MS_MEAN, EUROSAT_MS_STD

pytestmark = pytest.mark.filterwarnings("ignore::rasterio.errors.NotGeoreferencedWarning")

SIZE = 120  # pixels at 10 m
L2A_NAME = "S2A_MSIL2A_20230615T103031_N0509_R108_T32UMU_20230615T170036"
GRANULE = "GRANULE/{level}_T32UMU_A041680_20230615T103030"
PREFIX = "T32UMU_20230615T103031"
L1C_FILES = [f"IMG_DATA/{PREFIX}_{band}.jp2" for band in (*ESA_BANDS, "TCI")]
L2A_FILES = [
    f"IMG_DATA/R{res}m/{PREFIX}_{name}_{res}m.jp2"
    for res, names in (
        (10, "B02 B03 B04 B08 TCI AOT WVP"),
        (20, "B01 B02 B03 B04 B05 B06 B07 B8A B11 B12 TCI AOT WVP SCL"),
        (60, "B01 B02 B03 B04 B05 B06 B07 B8A B09 B11 B12 TCI AOT WVP SCL"),
    )
    for name in names.split()
]
L2A_QI = [f"QI_DATA/MSK_{mask}PRB_{res}m.jp2" for mask in ("CLD", "SNW") for res in (20, 60)]


@pytest.fixture(scope="module")
def native() -> dict[str, np.ndarray]:
    return native_bands(sample_product_bands(SIZE, SIZE, seed=3))


def _metadata(path: Path) -> ET.Element:
    """The product metadata with namespaces dropped (GDAL's driver does the same)."""
    root = ET.fromstring(path.read_bytes())
    for element in root.iter():
        element.tag = element.tag.rpartition("}")[2]
    return root


def _open_product(product: Path, level: str) -> list[str]:
    """GDAL's SENTINEL2 subdatasets of a .SAFE folder or a .zip, checked to be one per resolution plus TCI."""
    with rasterio.open(product if product.suffix == ".zip" else product / f"MTD_MSI{level}.xml") as container:
        assert container.driver == "SENTINEL2"
        subdatasets = container.subdatasets
    assert [name.rsplit(":", 2)[1:] for name in subdatasets] == [
        ["10m", "EPSG_32632"],
        ["20m", "EPSG_32632"],
        ["60m", "EPSG_32632"],
        ["TCI", "EPSG_32632"],
    ]
    assert all(name.startswith(f"SENTINEL2_{level}:") for name in subdatasets)
    return subdatasets


def test_product_name_and_identifiers() -> None:
    assert product_name() == L2A_NAME
    assert product_name("L1C", "02.07") == "S2A_MSIL1C_20230615T103031_N0207_R108_T32UMU_20230615T170036"
    # ten days later: the same relative orbit, 143 orbits on
    assert product_name(sensing="20230625T103031") == "S2A_MSIL2A_20230625T103031_N0509_R108_T32UMU_20230625T170036"


def test_native_bands_shapes_rounding_and_nodata() -> None:
    stack = {band: np.full((12, 18), 1000, np.uint16) for band in ESA_BANDS}
    stack["B05"][0:2, 0:2] = [[1, 1], [2, 2]]  # mean 1.5 -> 2 (half up)
    stack["B05"][0:2, 2:4] = [[1, 1], [1, 2]]  # 1.25 -> 1
    stack["B05"][2:4, 0:2] = [[0, 9], [9, 9]]  # any 0 -> 0 (no data)
    stack["B01"][5, 5] = 0
    native = native_bands(stack)
    for band, array in native.items():
        factor = NATIVE_RESOLUTION[band] // 10
        assert array.shape == (12 // factor, 18 // factor) and array.dtype == np.uint16
    assert native["B02"] is stack["B02"]
    assert native["B05"][0, :3].tolist() == [2, 1, 1000] and native["B05"][1, 0] == 0
    assert native["B01"][0, 0] == 0 and native["B01"][1, 1] == 1000 and native["B09"].min() == 1000
    with pytest.raises(ValueError, match="multiples of 6"):
        native_bands({"B02": np.ones((10, 12), np.uint16)})
    with pytest.raises(ValueError, match="uint16"):
        native_bands({"B02": np.ones((12, 12), np.float32)})


def test_sample_bands_are_plausible_deterministic_and_never_nodata() -> None:
    bands = sample_product_bands(240, 300, seed=5, offset=1000)
    assert list(bands) == list(ESA_BANDS)
    for band, array in bands.items():
        assert array.shape == (240, 300) and array.dtype == np.uint16 and array.min() >= 1
        assert abs(array.mean() - 1000 - EUROSAT_MS_MEAN[band]) < 1.5 * EUROSAT_MS_STD[band]
    assert not np.array_equal(bands["B04"][:60, :60], bands["B04"][120:180, 120:180])  # windows differ
    assert np.corrcoef(bands["B08"].ravel(), bands["B8A"].ravel())[0, 1] > 0.5  # NIR bands move together
    again = dict(iter_sample_product_bands(240, 300, seed=5, offset=1000))
    assert all(np.array_equal(bands[band], again[band]) for band in ESA_BANDS)
    single = dict(iter_sample_product_bands(240, 300, seed=5, offset=1000, bands=["B11"]))
    assert np.array_equal(single["B11"], bands["B11"])
    assert not np.array_equal(sample_product_bands(240, 300, seed=6)["B02"], bands["B02"])
    older = sample_product_bands(240, 300, seed=5, offset=0)
    assert abs(float(bands["B03"].mean()) - float(older["B03"].mean()) - 1000) < 1


@pytest.mark.parametrize("as_zip", [False, True], ids=["safe", "zip"])
@pytest.mark.parametrize("baseline", ["05.09", "02.07"])
@pytest.mark.parametrize("level", ["L1C", "L2A"])
def test_product_layout_metadata_and_gdal(
    tmp_path: Path, native: dict[str, np.ndarray], level: str, baseline: str, as_zip: bool
) -> None:
    product = write_product(tmp_path, native, level=level, baseline=baseline, as_zip=as_zip, blocksize=64)
    name = product_name(level, baseline)
    assert name.startswith(f"S2A_MSI{level}_20230615T103031_N{baseline.replace('.', '')}_R108_T32UMU_")
    assert sorted(p.name for p in tmp_path.iterdir()) == [name + (".zip" if as_zip else ".SAFE")]  # nothing else

    if as_zip:
        with zipfile.ZipFile(product) as archive:
            entries = archive.namelist()
        assert entries[0] == f"{name}.SAFE/" and all(entry.startswith(f"{name}.SAFE/") for entry in entries)
        files = {entry.removeprefix(f"{name}.SAFE/") for entry in entries if not entry.endswith("/")}
        folders = {entry.removeprefix(f"{name}.SAFE/").rstrip("/") for entry in entries if entry.endswith("/")}
        with rasterio.open(f"/vsizip/{product}/{name}.SAFE/MTD_MSI{level}.xml") as container:
            assert len(container.subdatasets) == 4  # the path inside the zip opens too
    else:
        files = {p.relative_to(product).as_posix() for p in product.rglob("*") if p.is_file()}
        folders = {p.relative_to(product).as_posix() for p in product.rglob("*") if p.is_dir()}
    granule = GRANULE.format(level=level)
    images = L1C_FILES if level == "L1C" else L2A_FILES + L2A_QI
    expected = {f"MTD_MSI{level}.xml", "manifest.safe", f"{granule}/MTD_TL.xml", f"{granule}/QI_DATA/{PREFIX}_PVI.jp2"}
    expected |= {f"{granule}/{image}" for image in images}
    assert {f for f in files if not f.startswith("DATASTRIP/")} == expected
    assert {"AUX_DATA", "HTML", "DATASTRIP", f"{granule}/AUX_DATA", f"{granule}/QI_DATA"} <= folders

    subdatasets = _open_product(product, level)
    with rasterio.open(subdatasets[0]) as ten:
        assert ten.crs.to_epsg() == 32632 and ten.transform == rasterio.Affine(10, 0, 499980, 0, -10, 5400000)
        pixels = ten.read(indexes=[1, 2, 3, 4])
        assert [ten.tags(i)["BANDNAME"] for i in (1, 2, 3, 4)] == ["B4", "B3", "B2", "B8"]
        offset_tag = "RADIO_ADD_OFFSET" if level == "L1C" else "BOA_ADD_OFFSET"
        assert ten.tags(1).get(offset_tag) == ("-1000" if baseline >= "04.00" else None)
    for plane, band in zip(pixels, ("B04", "B03", "B02", "B08"), strict=True):
        np.testing.assert_array_equal(plane, native[band])

    if as_zip:
        return
    root = _metadata(product / f"MTD_MSI{level}.xml")
    info = root.find("General_Info/Product_Info")
    assert info.findtext("PRODUCT_URI") == f"{name}.SAFE"
    assert info.findtext("PROCESSING_BASELINE") == baseline
    assert info.findtext("PRODUCT_TYPE") == f"S2MSI{level[1:]}"
    assert info.findtext("PROCESSING_LEVEL") == f"Level-{level[1:]}"
    image_files = [e.text for e in info.findall("Product_Organisation/Granule_List/Granule/IMAGE_FILE")]
    assert image_files == [f"{granule}/{image.removesuffix('.jp2')}" for image in images if "QI_DATA" not in image]
    characteristics = root.find("General_Info/Product_Image_Characteristics")
    if level == "L1C":
        quantification = characteristics.find("QUANTIFICATION_VALUE")
        offsets = characteristics.findall("Radiometric_Offset_List/RADIO_ADD_OFFSET")
    else:
        quantification = characteristics.find("QUANTIFICATION_VALUES_LIST/BOA_QUANTIFICATION_VALUE")
        offsets = characteristics.findall("BOA_ADD_OFFSET_VALUES_LIST/BOA_ADD_OFFSET")
    assert quantification.text == "10000" and quantification.get("unit") == "none"
    if baseline >= "04.00":
        assert {int(e.get("band_id")): int(e.text) for e in offsets} == dict.fromkeys(range(13), -1000)
    else:
        assert offsets == []
    special = {
        e.findtext("SPECIAL_VALUE_TEXT"): e.findtext("SPECIAL_VALUE_INDEX")
        for e in characteristics.iter("Special_Values")
    }
    assert special == {"NODATA": "0", "SATURATED": "65535"}
    spectral = characteristics.findall("Spectral_Information_List/Spectral_Information")
    assert [(e.get("bandId"), e.get("physicalBand"), e.findtext("RESOLUTION")) for e in spectral][7:10] == [
        ("7", "B8", "10"),
        ("8", "B8A", "20"),
        ("9", "B9", "60"),
    ]
    tile = _metadata(product / granule / "MTD_TL.xml")
    geocoding = tile.find("Geometric_Info/Tile_Geocoding")
    assert geocoding.findtext("HORIZONTAL_CS_CODE") == "EPSG:32632"
    sizes = {e.get("resolution"): (e.findtext("NROWS"), e.findtext("NCOLS")) for e in geocoding.findall("Size")}
    assert sizes == {"10": ("120", "120"), "20": ("60", "60"), "60": ("20", "20")}
    manifest = _metadata(product / "manifest.safe")
    checksums = {e.find("fileLocation").get("href"): e.findtext("checksum") for e in manifest.iter("byteStream")}
    mtd = product / f"MTD_MSI{level}.xml"
    assert checksums[f"./MTD_MSI{level}.xml"] == hashlib.sha3_256(mtd.read_bytes()).hexdigest()


def test_l2a_resolutions_scl_and_true_colour(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    stack = {band: rng.integers(900, 4000, (60, 60), dtype=np.uint16) for band in ESA_BANDS}
    stack["B04"][:, :] = 1000  # reflectance 0 with the -1000 offset: TCI 1
    stack["B03"][:, :] = 3500  # beyond 0.2: TCI 255
    stack["B02"][:, :] = 2000  # 0.1: TCI 1 + round(127.0) = 128
    stack["B02"][0, 0] = 0  # no data: TCI 0 everywhere at that pixel, and 0 in the 20 m and 60 m blocks
    native = native_bands(stack)
    scl = rng.integers(0, 12, (30, 30), dtype=np.uint8)
    scl[:3, :3] = 9  # one 60 m block all cloud
    product = write_product(tmp_path, native, scl=scl, blocksize=64)
    subdatasets = _open_product(product, "L2A")
    with rasterio.open(subdatasets[1]) as twenty:  # B5 B6 B7 B8A B11 B12 AOT CLD SCL SNW WVP
        names = [twenty.tags(i)["BANDNAME"] for i in range(1, twenty.count + 1)]
        assert names[:6] == ["B5", "B6", "B7", "B8A", "B11", "B12"]
        np.testing.assert_array_equal(twenty.read(1), native["B05"])
        np.testing.assert_array_equal(twenty.read(names.index("SCL") + 1), scl)
        assert twenty.read(names.index("CLD") + 1)[0, 0] == 90
    with rasterio.open(subdatasets[2]) as sixty:
        names = [sixty.tags(i)["BANDNAME"] for i in range(1, sixty.count + 1)]
        assert names[:2] == ["B1", "B9"]
        np.testing.assert_array_equal(sixty.read(1), native["B01"])
        assert sixty.read(names.index("SCL") + 1)[0, 0] == 9
    with rasterio.open(subdatasets[3]) as tci:
        colour = tci.read()
    assert colour.dtype == np.uint8 and colour[:, 0, 0].tolist() == [0, 0, 0]
    assert colour[:, 1, 1].tolist() == [1, 255, 128]
    r20 = product / GRANULE.format(level="L2A") / "IMG_DATA" / "R20m"
    with rasterio.open(r20 / f"{PREFIX}_B02_20m.jp2") as b02, rasterio.open(r20 / f"{PREFIX}_B01_20m.jp2") as b01:
        assert b02.read(1)[0, 0] == 0 and b02.read(1)[0, 1] == 2000 and b02.res == (20, 20)
        np.testing.assert_array_equal(b01.read(1)[::3, ::3], native["B01"])  # 60 m repeated
    with rasterio.open(r20 / f"{PREFIX}_TCI_20m.jp2") as tci20:
        assert tci20.count == 3 and tci20.read()[:, 0, 1].tolist() == [1, 255, 128]

    old = write_product(tmp_path / "old", native, baseline="02.07", blocksize=64)  # no offset: DN is reflectance
    with rasterio.open(old / GRANULE.format(level="L2A") / f"IMG_DATA/R10m/{PREFIX}_TCI_10m.jp2") as tci:
        assert tci.read()[:, 1, 1].tolist() == [128, 255, 255]


def test_fewer_bands_other_tiles_and_bad_input(tmp_path: Path, native: dict[str, np.ndarray]) -> None:
    four = {band: native[band] for band in ("B02", "B03", "B04", "B08", "B10")}  # B10 has no place in L2A
    product = write_product(tmp_path / "four", four, tile="T56HLH", origin=(300000.0, 6300040.0), blocksize=64)
    assert "_T56HLH_" in product.name
    r20 = {p.name.split("_")[2] for p in product.glob("GRANULE/*/IMG_DATA/R20m/*.jp2")}
    assert r20 == {"B02", "B03", "B04", "TCI", "AOT", "WVP", "SCL"}
    assert not list(product.rglob("*B10*"))
    with rasterio.open(product / "MTD_MSIL2A.xml") as container:
        ten = container.subdatasets[0]
    assert ten.endswith(":10m:EPSG_32756")  # zone 56, southern hemisphere
    with rasterio.open(ten) as dataset:
        assert dataset.transform.f == 6300040 and np.array_equal(dataset.read(4), native["B08"])

    with pytest.raises(ValueError, match="L2A"):
        write_product(tmp_path, native, level="L1C", scl=np.zeros((60, 60), np.uint8))
    with pytest.raises(ValueError, match="scl"):
        write_product(tmp_path, native, scl=np.zeros((120, 120), np.uint8))
    with pytest.raises(ValueError, match="different 10 m grids"):
        write_product(tmp_path, {"B02": native["B02"], "B05": native["B02"]})
    with pytest.raises(ValueError, match="baseline"):
        write_product(tmp_path, native, baseline="5.9")
    with pytest.raises(ValueError, match="tile"):
        write_product(tmp_path, native, tile="32UMU")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["four"]  # failed calls leave nothing


def test_writing_is_pure_and_replaces_atomically(tmp_path: Path, native: dict[str, np.ndarray]) -> None:
    small = {band: native[band] for band in ("B02", "B03", "B04", "B08")}
    first = write_product(tmp_path / "a", small, as_zip=True, blocksize=64)
    second = write_product(tmp_path / "b", small, as_zip=True, blocksize=64)
    assert first.read_bytes() == second.read_bytes()  # no clock, no randomness
    safe = write_product(tmp_path / "a", small, blocksize=64)
    (safe / "stale.txt").write_text("from an older write")
    again = write_product(tmp_path / "a", small, blocksize=64)
    assert again == safe and not (safe / "stale.txt").exists()
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == [f"{L2A_NAME}.SAFE", f"{L2A_NAME}.zip"]
