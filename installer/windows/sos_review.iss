; Inno Setup 6 script: the Windows installer of SOS Review (per-user or all users, 64-bit).
; Build the one-folder app first (installer\windows\build_windows.ps1 runs both steps):
;   iscc /DAppVersion=0.1.0 /DDistDir=..\..\out\installer\dist\SOSReview installer\windows\sos_review.iss
; NOT TRIED: written on Linux, where neither PyInstaller for Windows nor Inno Setup can run.
;
; The review store, the model registry and the logs live in %LOCALAPPDATA%\SOS Review and the
; settings in the registry (HKCU\Software\SOS Review); the installer never writes there and the
; uninstaller leaves them, so an upgrade or a reinstall keeps every label and model.

#ifndef AppVersion
  #define AppVersion "0.1.0"
#endif
#ifndef DistDir
  #define DistDir "..\..\out\installer\dist\SOSReview"
#endif
#ifndef OutputDir
  #define OutputDir "..\..\out\installer"
#endif

[Setup]
; Keep this AppId for every release: Windows recognises upgrades by it.
AppId={{6F1C2B7E-52A4-4C1B-9E57-0D3A8C4F2B61}
AppName=SOS Review
AppVersion={#AppVersion}
AppVerName=SOS Review {#AppVersion}
AppPublisher=SOS Review team
DefaultDirName={autopf}\SOS Review
DefaultGroupName=SOS Review
DisableProgramGroupPage=yes
; Per-user install by default (no administrator needed on clinic PCs); all users on request.
PrivilegesRequired=lowest
PrivilegesRequiredOverridesAllowed=dialog
ArchitecturesAllowed=x64compatible
ArchitecturesInstallIn64BitMode=x64compatible
MinVersion=10.0
OutputDir={#OutputDir}
OutputBaseFilename=SOSReview-{#AppVersion}-windows-x64-setup
SetupIconFile=..\..\resources\icons\sos-review.ico
UninstallDisplayIcon={app}\SOSReview.exe
; torch dominates the size; lzma2 with a separate process keeps the setup's memory in check.
Compression=lzma2/max
SolidCompression=yes
LZMAUseSeparateProcess=yes
WizardStyle=modern
CloseApplications=yes

[Tasks]
Name: "desktopicon"; Description: "{cm:CreateDesktopIcon}"; GroupDescription: "{cm:AdditionalIcons}"; Flags: unchecked

[InstallDelete]
; An upgrade replaces the whole bundle: files a new version no longer ships must not linger
; next to the new ones (user data is elsewhere, see above).
Type: filesandordirs; Name: "{app}\_internal"

[Files]
Source: "{#DistDir}\*"; DestDir: "{app}"; Flags: ignoreversion recursesubdirs createallsubdirs

[Icons]
Name: "{group}\SOS Review"; Filename: "{app}\SOSReview.exe"
Name: "{autodesktop}\SOS Review"; Filename: "{app}\SOSReview.exe"; Tasks: desktopicon

[Run]
Filename: "{app}\SOSReview.exe"; Description: "{cm:LaunchProgram,SOS Review}"; Flags: nowait postinstall skipifsilent
