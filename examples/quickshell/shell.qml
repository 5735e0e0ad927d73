// A quickshell configuration that shows the wallpaper pipeline's progress in a small panel at
// the top right of every screen, while there is something to show (hidden 10 s after a
// finished run). Run it with `qs -p examples/quickshell` (or copy this directory to
// ~/.config/quickshell/wallpaper and run `qs -c wallpaper`); README.md says more.
import QtQuick
import Quickshell

ShellRoot {
    // One connection to the hub for every screen.
    WallpaperLink {
        id: wallpaper
    }

    Variants {
        model: Quickshell.screens

        PanelWindow {
            required property var modelData

            screen: modelData
            visible: wallpaper.shown
            anchors {
                top: true
                right: true
            }
            margins {
                top: 8
                right: 8
            }
            exclusionMode: ExclusionMode.Ignore
            implicitWidth: widget.implicitWidth + 24
            implicitHeight: widget.implicitHeight + 16
            color: "#cc282a36"

            WallpaperWidget {
                id: widget
                link: wallpaper
                anchors.centerIn: parent
            }
        }
    }
}
