"""De-identification: the canary test (DI-1), pseudonyms (DI-2), burned-in text (DI-3), raster
metadata (DI-4) and source paths (DI-5).

Fixtures put a unique "CANARY-<keyword>" string into every identifying attribute we build
(a broad hand-picked subset of PS3.15 Table E.1-1; the table itself is not vendored), private
blocks, overlays, curves, nested sequences and the UIDs, then grep everything the store wrote.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pydicom
import pytest
from PIL import Image, PngImagePlugin
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from sos_core.errors import BurnedInAnnotation, ImagingError, ParameterError
from sos_core.imaging import open_study
from sos_core.imaging.study import Study
from sos_core.review import ReviewStore, export_queue
from sos_core.review.deid import ALLOWED_ATTRIBUTES
from tests.sos_core.review.helpers import expanded_bytes, find_in_tree, png_chunk_types

CT_IMAGE = "1.2.840.10008.5.1.4.1.1.2"
SECONDARY_CAPTURE = "1.2.840.10008.5.1.4.1.1.7"

# Identifying attributes of PS3.15 Table E.1-1 (hand-picked subset, all present in pydicom's
# dictionary; unknown keywords are skipped and a floor on the count is asserted).
E1_KEYWORDS = """
AccessionNumber AcquisitionComments AcquisitionDate AcquisitionDateTime AcquisitionTime
AcquisitionDeviceProcessingDescription AcquisitionProtocolDescription AdditionalPatientHistory
AdmissionID AdmittingDate AdmittingDiagnosesDescription AdmittingTime Allergies BranchOfService
CommentsOnThePerformedProcedureStep ConsultingPhysicianName ContentCreatorName ContentDate
ContentTime ContrastBolusAgent CountryOfResidence CurrentPatientLocation DerivationDescription
DetectorID DeviceSerialNumber DeviceUID DischargeDiagnosisDescription EthnicGroup FrameComments
FrameOfReferenceUID GantryID GeneratorID IdentifyingComments ImageComments InstanceCreationDate
InstanceCreationTime InstanceCreatorUID InstitutionAddress InstitutionalDepartmentName
InstitutionName IssuerOfAdmissionID IssuerOfPatientID LastMenstrualDate MedicalAlerts
MedicalRecordLocator MilitaryRank NameOfPhysiciansReadingStudy NamesOfIntendedRecipientsOfResults
Occupation OperatorsName OtherPatientIDs OtherPatientNames PatientAddress PatientAge
PatientBirthDate PatientBirthName PatientBirthTime PatientComments PatientID
PatientMotherBirthName PatientName PatientReligiousPreference PatientSex PatientState
PatientTelephoneNumbers PerformedLocation PerformedProcedureStepDescription
PerformedProcedureStepID PerformedProcedureStepStartDate PerformingPhysicianName PersonAddress
PersonName PersonTelephoneNumbers PhysiciansOfRecord PlateID PreMedication ProtocolName
ReasonForStudy ReferringPhysicianAddress ReferringPhysicianName
ReferringPhysicianTelephoneNumbers RegionOfResidence RequestedProcedureDescription
RequestedProcedureID RequestingPhysician RequestingService ResponsibleOrganization
ResponsiblePerson ResultsComments ScheduledPerformingPhysicianName
ScheduledProcedureStepDescription SeriesDate SeriesDescription SeriesInstanceUID SeriesTime
SmokingStatus SOPInstanceUID SpecialNeeds StationName StudyComments StudyDate StudyDescription
StudyID StudyInstanceUID StudyTime TextString TopicAuthor TopicKeywords TopicSubject TopicTitle
VerifyingObserverName VisitComments InstitutionCodeSequence ReferencedStudySequence
ReferencedPatientSequence RequestAttributesSequence SourceImageSequence
OtherPatientIDsSequence ReferencedImageSequence ProcedureCodeSequence
""".split()  # noqa: SIM905 - a word list reads better than 120 quoted strings

_TEXT_VRS = {"AE", "AS", "CS", "DA", "DT", "LO", "LT", "PN", "SH", "ST", "TM", "UC", "UR", "UT"}
_BYTE_VRS = {"OB", "OW", "UN", "OB or OW"}


class Canaries:
    """Builds canary-laden datasets and remembers every secret it planted."""

    def __init__(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)
        self.uids: list[str] = []
        self.n_attributes = 0

    def uid(self) -> str:
        # A valid UID whose digits are unique enough to grep for.
        value = "1.2.826.0.1.3680043.10.543." + "".join(map(str, self.rng.integers(1, 10, 24)))
        self.uids.append(value)
        return value

    def nested(self, depth: int) -> Sequence:
        item = Dataset()
        item.PatientName = f"CANARY-nested-{depth}"
        item.ReferencedSOPInstanceUID = self.uid()
        item.CodeMeaning = f"CANARY-CodeMeaning-{depth}"
        if depth > 0:
            item.ReferencedSeriesSequence = self.nested(depth - 1)
        return Sequence([item])

    def dataset(self, *, pixel_seed: int, sop_class: str = CT_IMAGE) -> Dataset:
        ds = Dataset()
        for keyword in E1_KEYWORDS:
            tag = pydicom.datadict.tag_for_keyword(keyword)
            if tag is None:
                continue
            vr = pydicom.datadict.dictionary_VR(tag)
            if vr == "SQ":
                value: object = self.nested(2)
            elif vr == "UI":
                value = self.uid()
            elif vr in _TEXT_VRS:
                value = f"CANARY-{keyword}"
            elif vr in _BYTE_VRS:
                value = f"CANARY-{keyword}!".encode()[: len(keyword) + 8 & ~1]
            else:
                continue
            ds.add_new(tag, vr.split(" ")[0], value)
            self.n_attributes += 1
        self._private_overlay_curve(ds)
        pixels = np.random.default_rng(pixel_seed).integers(0, 4096, (64, 80), dtype=np.uint16)
        ds.SOPClassUID = sop_class
        ds.Modality = "CT"
        ds.Rows, ds.Columns = pixels.shape
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.PixelSpacing = [0.25, 0.3]
        ds.RescaleSlope, ds.RescaleIntercept = 1, -1024
        ds.BurnedInAnnotation = "NO"
        ds.PixelData = pixels.tobytes()
        ds.file_meta = FileMetaDataset()
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.file_meta.MediaStorageSOPClassUID = sop_class
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.file_meta.ImplementationClassUID = generate_uid()
        return ds

    def _private_overlay_curve(self, ds: Dataset) -> None:
        block = ds.private_block(0x0011, "CANARY-creator", create=True)
        block.add_new(0x01, "LO", "CANARY-private-LO")
        block.add_new(0x02, "OB", b"CANARY-private-OB!")
        block.add_new(0x03, "SQ", self.nested(1))
        ds.add_new(0x00131010, "LO", "CANARY-private-no-creator")
        ds.add_new(0x60000010, "US", 8)  # overlay rows / columns / type / origin / bits
        ds.add_new(0x60000011, "US", 8)
        ds.add_new(0x60000040, "CS", "G")
        ds.add_new(0x60000050, "SS", [1, 1])
        ds.add_new(0x60000100, "US", 1)
        ds.add_new(0x60000102, "US", 0)
        ds.add_new(0x60000022, "LO", "CANARY-OverlayDescription")
        ds.add_new(0x60001500, "LO", "CANARY-OverlayLabel")
        ds.add_new(0x60003000, "OW", b"CANARY-OverlayData!!")
        ds.add_new(0x50000022, "LO", "CANARY-CurveDescription")  # retired curve module
        ds.add_new(0x50003000, "OB", b"CANARY-CurveData")


@pytest.fixture
def lenient_pydicom(monkeypatch: pytest.MonkeyPatch) -> None:
    """Let pydicom write the deliberately invalid canary values (dates, lengths)."""
    from pydicom import config

    monkeypatch.setattr(config.settings, "writing_validation_mode", config.IGNORE)
    monkeypatch.setattr(config.settings, "reading_validation_mode", config.IGNORE)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[ReviewStore]:
    with ReviewStore.open(tmp_path / "store") as s:
        yield s


def _write(ds: Dataset, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path


def _study(path: Path) -> Study:
    """The app's own loader when it handles the file, else the same record built by hand."""
    try:
        return open_study(path)
    except ImagingError:
        ds = pydicom.dcmread(path)
        return Study(pixels=ds.pixel_array, kind="image", modality="CT", sources=(path,))


def _grep_everything(
    store: ReviewStore, extra: list[Path], logs: str, texts: list[str]
) -> list[str]:
    hits = find_in_tree([store.folder, *extra], texts)
    return hits + [f"log: {t}" for t in texts if t in logs]


# --- DI-1 ---------------------------------------------------------------------------------------


@pytest.mark.req("DI-1")
def test_canary_attributes_never_reach_store_logs_or_export(
    tmp_path: Path,
    store: ReviewStore,
    lenient_pydicom: None,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    canaries = Canaries(1)
    folder = tmp_path / "incoming"
    paths = [_write(canaries.dataset(pixel_seed=i), folder / f"im{i}.dcm") for i in range(3)]
    assert canaries.n_attributes >= 3 * 100  # the fixture really is dense with canaries
    assert b"CANARY" in paths[0].read_bytes()
    # Three routes in: Study + dataset, Study alone (header read from its source), array + ds.
    cases = [
        store.ingest(_study(paths[0]), dataset=pydicom.dcmread(paths[0])).case,
        store.ingest(_study(paths[1])).case,
        store.ingest(pydicom.dcmread(paths[2]).pixel_array, dataset=pydicom.dcmread(paths[2])).case,
    ]
    for case in cases:
        assert set(case.attributes) <= set(ALLOWED_ATTRIBUTES)
        assert case.attributes["PixelSpacing"] == [0.25, 0.3]
        assert case.pixel_spacing == (0.25, 0.3)
        assert case.modality == "CT"
        assert case.patient_sex is None
        assert case.deid["options"] == ["113100"]
        store.add_label(case.case_id, stage=1, box=(1, 1, 20, 20), reviewer="dr-a")
    export = export_queue(store, tmp_path / "export").folder
    backup = store.backup(tmp_path / "backup.sqlite3")
    texts = ["CANARY", *canaries.uids]
    assert Path(str(store.db_path) + "-wal").exists()
    hits = _grep_everything(store, [export, backup], caplog.text, texts)
    assert hits == []
    store.close()
    assert _grep_everything(store, [export, backup], caplog.text, texts) == []


@pytest.mark.req("DI-1")
def test_retain_patient_characteristics_keeps_sex_and_age_in_months_only(
    tmp_path: Path, store: ReviewStore, lenient_pydicom: None
) -> None:
    ds = Canaries(2).dataset(pixel_seed=7)
    ds.PatientSex = "F"
    ds.PatientBirthDate = "19990314"
    ds.StudyDate = "20130501"
    del ds.PatientAge
    case = store.ingest(ds.pixel_array, dataset=ds, retain_patient_characteristics=True).case
    assert (case.patient_sex, case.patient_age_months) == ("F", 169)
    assert case.deid["options"] == ["113100", "113108"]
    ds2 = Canaries(3).dataset(pixel_seed=8)
    ds2.PatientSex, ds2.PatientAge = "M", "014Y"
    case2 = store.ingest(ds2.pixel_array, dataset=ds2, retain_patient_characteristics=True).case
    assert (case2.patient_sex, case2.patient_age_months) == ("M", 168)
    assert find_in_tree([store.folder], ["19990314", "1999-03-14", "20130501"]) == []


# --- DI-2 ---------------------------------------------------------------------------------------


@pytest.mark.req("DI-2")
def test_same_image_twice_is_one_case_and_uids_are_never_stored(
    tmp_path: Path, store: ReviewStore, lenient_pydicom: None
) -> None:
    canaries = Canaries(4)
    path = _write(canaries.dataset(pixel_seed=1), tmp_path / "series" / "a.dcm")
    first = store.ingest(_study(path), dataset=pydicom.dcmread(path))
    again = store.ingest(_study(path), dataset=pydicom.dcmread(path))  # fresh read, same image
    assert first.created
    assert not again.created
    assert again.case == first.case
    assert len(store.cases()) == 1
    # The pseudonym is keyed by this store's secret: another store names the same image apart.
    with ReviewStore.open(tmp_path / "other") as other:
        elsewhere = other.ingest(_study(path), dataset=pydicom.dcmread(path)).case
    assert elsewhere.content_hash == first.case.content_hash
    assert elsewhere.case_id != first.case.case_id
    secret = (store.folder / "review.secret").read_bytes()
    assert find_in_tree([store.db_path], canaries.uids + [secret.hex()]) == []
    assert secret not in store.db_path.read_bytes()


# --- DI-3 ---------------------------------------------------------------------------------------


@pytest.mark.req("DI-3")
def test_burned_in_annotation_yes_is_refused_with_a_reason(
    store: ReviewStore, lenient_pydicom: None
) -> None:
    ds = Canaries(5).dataset(pixel_seed=3)
    ds.BurnedInAnnotation = "YES"
    with pytest.raises(BurnedInAnnotation, match="burned-in"):
        store.ingest(ds.pixel_array, dataset=ds)
    assert store.cases() == []
    assert list(store.blobs.root.iterdir()) == []
    # An expert may vouch for it, or blank the text: the pixels are redacted before hashing.
    case = store.ingest(
        ds.pixel_array, dataset=ds, burn_in_confirmed_by="dr-a", redactions=[(0, 0, 80, 8)]
    ).case
    assert case.burn_in == "redacted"
    assert "113101" in case.deid["options"]
    stored = store.pixels(case.case_id)
    assert (stored[:8] == stored.min()).all()
    assert not np.array_equal(stored, ds.pixel_array)
    assert any(e.action == "case.burn_in_confirmed" for e in store.audit_entries())


@pytest.mark.req("DI-3")
@pytest.mark.parametrize("source", ["png", "secondary-capture"])
def test_held_image_is_queued_only_after_confirmation(
    tmp_path: Path, store: ReviewStore, lenient_pydicom: None, source: str
) -> None:
    if source == "png":
        path = tmp_path / "photo.png"
        Image.fromarray((np.arange(64 * 80) % 251).astype(np.uint8).reshape(64, 80)).save(path)
        case = store.ingest(open_study(path)).case
    else:
        ds = Canaries(6).dataset(pixel_seed=4, sop_class=SECONDARY_CAPTURE)
        case = store.ingest(ds.pixel_array, dataset=ds).case
    assert case.burn_in == "hold"
    assert not case.queueable
    store.add_label(case.case_id, stage=2, box=(1, 1, 20, 20), reviewer="dr-a")
    q = store.queue()
    assert len(q) == 0
    assert q.held_cases == 1
    with pytest.raises(ParameterError):
        export_queue(store, tmp_path / "export", val_fraction=2.0)
    assert export_queue(store, tmp_path / "export").label_ids == ()  # held cases never leave
    confirmed = store.confirm_no_burned_in(case.case_id, "dr-b")
    assert confirmed.burn_in == "confirmed"
    assert confirmed.queueable
    assert [i.case_id for i in store.queue().items] == [case.case_id]
    entries = store.audit_entries(f"case:{case.case_id}")
    assert [(e.action, e.actor) for e in entries][-1] == ("case.burn_in_confirmed", "dr-b")
    assert entries[-1].details["statement"] == "no burned-in identifiers"


# --- DI-4 ---------------------------------------------------------------------------------------


def _raster_with_metadata(path: Path) -> None:
    img = Image.fromarray((np.arange(64 * 80) % 253).astype(np.uint8).reshape(64, 80))
    exif = Image.Exif()
    exif[0x010E] = "CANARY-EXIF-ImageDescription"
    exif[0x013B] = "CANARY-EXIF-Artist"
    icc = b"CANARY-ICC-profile" * 8
    xmp = b'<x:xmpmeta xmlns:x="adobe:ns:meta/">CANARY-XMP</x:xmpmeta>'
    if path.suffix == ".png":
        info = PngImagePlugin.PngInfo()
        info.add_text("Comment", "CANARY-tEXt")
        info.add_text("Author", "CANARY-zTXt", zip=True)
        info.add_itxt("Description", "CANARY-iTXt", lang="en", tkey="CANARY-iTXt-key")
        info.add_itxt("XML:com.adobe.xmp", xmp.decode())
        img.save(path, pnginfo=info, exif=exif.tobytes(), icc_profile=icc)
    else:
        img.save(path, "JPEG", exif=exif.tobytes(), icc_profile=icc, comment=b"CANARY-COM", xmp=xmp)


@pytest.mark.req("DI-4")
@pytest.mark.parametrize("suffix", [".png", ".jpg"])
def test_raster_metadata_does_not_survive_into_the_blob(
    tmp_path: Path, store: ReviewStore, suffix: str
) -> None:
    path = tmp_path / f"ceph{suffix}"
    _raster_with_metadata(path)
    source = expanded_bytes(path)
    planted = [b"CANARY-EXIF", b"CANARY-ICC", b"CANARY-XMP"]
    planted += [b"CANARY-tEXt", b"CANARY-zTXt", b"CANARY-iTXt"] if suffix == ".png" else []
    assert all(p in source for p in planted)  # the fixture really carries them
    case = store.ingest(open_study(path), burn_in_confirmed_by="dr-a").case
    blob = store.blobs.path(case.blob).read_bytes()
    assert set(png_chunk_types(blob)) == {b"IHDR", b"IDAT", b"IEND"}
    assert find_in_tree([store.folder], ["CANARY"]) == []
    with Image.open(path) as img:
        assert np.array_equal(store.pixels(case.case_id), np.asarray(img.convert("L")))


# --- DI-5 ---------------------------------------------------------------------------------------


@pytest.mark.req("DI-5")
def test_canary_in_folder_name_never_reaches_store_or_logs(
    tmp_path: Path,
    store: ReviewStore,
    lenient_pydicom: None,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    folder = tmp_path / "CANARY-DOE^JANE 1987-02-14" / "CANARY-series"
    png = folder / "CANARY-scan.png"
    folder.mkdir(parents=True)
    Image.fromarray((np.arange(64 * 80) % 249).astype(np.uint8).reshape(64, 80)).save(png)
    dcm = _write(Canaries(7).dataset(pixel_seed=5), folder / "CANARY-image.dcm")
    raster = open_study(png)
    # A loader's description or warnings might name the file: the store never keeps them.
    raster = Study(
        pixels=raster.pixels,
        kind="image",
        modality="PNG",
        description=f"CANARY-description {png}",
        warnings=(f"CANARY-warning in {png.name}",),
        sources=(png,),
    )
    store.ingest(raster, source_label="ceph 12 (clinic B)")
    store.ingest(_study(dcm))  # header read from the source path
    broken = Study(pixels=raster.pixels.copy(), kind="image", modality="CT", sources=(png,))
    with pytest.raises(ParameterError) as info:
        store.ingest(broken)  # not a DICOM file: the error must not name the path
    assert "CANARY" not in str(info.value)
    assert [c.source_label for c in store.cases()] == ["ceph 12 (clinic B)", None]
    assert _grep_everything(store, [], caplog.text, ["CANARY", "DOE^JANE"]) == []
