# Build the Windows one-folder app with PyInstaller, self-test it, and make the Inno Setup installer.
#   powershell -ExecutionPolicy Bypass -File installer\windows\build_windows.ps1
# Needs: Python 3.11+ (python.org, 64-bit) on PATH as `py -3.11`, Inno Setup 6 (iscc.exe on PATH
# or in its default folder). Environment: SOS_BUILD_DIR (default out\installer), SOS_BUILD_VENV
# (default out\installer-venv).
# NOT TRIED: written on Linux; mirrors installer/build_linux.sh step by step.
$ErrorActionPreference = "Stop"
$root = (Resolve-Path "$PSScriptRoot\..\..").Path
Set-Location $root
$work = if ($env:SOS_BUILD_DIR) { $env:SOS_BUILD_DIR } else { "$root\out\installer" }
$venv = if ($env:SOS_BUILD_VENV) { $env:SOS_BUILD_VENV } else { "$root\out\installer-venv" }
$py = "$venv\Scripts\python.exe"

if (-not (Test-Path $py)) { py -3.11 -m venv $venv }
& $py -m pip install --quiet --upgrade pip
# PyPI's Windows torch wheels are the CPU build; install it before the project's range pulls one.
& $py -m pip install --quiet "torch==2.13.0"
& $py -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml','rb'))['project']['dependencies']))" |
    Set-Content "$venv\requirements.txt"
& $py -m pip install --quiet -r "$venv\requirements.txt"
& $py -m pip install --quiet "pyinstaller==6.16.0"
$version = & $py -c "import sos_core; print(sos_core.__version__)"

$watch = [Diagnostics.Stopwatch]::StartNew()
Remove-Item -Recurse -Force "$work\build", "$work\dist" -ErrorAction SilentlyContinue
& "$venv\Scripts\pyinstaller.exe" --noconfirm --clean --log-level WARN `
    --workpath "$work\build" --distpath "$work\dist" installer\sos_review.spec
if ($LASTEXITCODE -ne 0) { throw "PyInstaller failed" }
Write-Host "PyInstaller: $([int]$watch.Elapsed.TotalSeconds) s"

# The app is windowed (no console), so the self-test's line goes to the log folder.
$log = "$env:LOCALAPPDATA\SOS Review\Logs\self-test.txt"
Remove-Item $log -ErrorAction SilentlyContinue
Remove-Item Env:SOS_MODEL_DIR -ErrorAction SilentlyContinue
$proc = Start-Process "$work\dist\SOSReview\SOSReview.exe" -ArgumentList "--self-test" -Wait -PassThru
Get-Content $log
if ($proc.ExitCode -ne 0) { throw "self-test failed (exit $($proc.ExitCode))" }

$iscc = (Get-Command iscc.exe -ErrorAction SilentlyContinue).Source
if (-not $iscc) { $iscc = "${env:ProgramFiles(x86)}\Inno Setup 6\ISCC.exe" }
& $iscc "/DAppVersion=$version" "/DDistDir=$work\dist\SOSReview" "/DOutputDir=$work" installer\windows\sos_review.iss
if ($LASTEXITCODE -ne 0) { throw "Inno Setup failed" }
$size = (Get-ChildItem -Recurse "$work\dist\SOSReview" | Measure-Object -Sum Length).Sum
$setup = Get-Item "$work\SOSReview-$version-windows-x64-setup.exe"
Write-Host ("size: {0:N0} MB unpacked, {1:N0} MB installer" -f ($size / 1MB), ($setup.Length / 1MB))
